package importer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/testenv"
)

func TestRoundTripFixtures(t *testing.T) {
	t.Parallel()
	for _, dir := range testenv.Fixtures(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m1, err := Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := Encode(m1)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := Decode(b, Options{})
			if err != nil {
				t.Fatalf("decoding the encoded model: %v", err)
			}
			if !reflect.DeepEqual(m1, m2) {
				t.Fatal("decode → encode → decode changed the model")
			}
			b2, err := Encode(m2)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != string(b2) {
				t.Error("encoding is not deterministic")
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	dir := testenv.Path(t, "testdata", "malformed")
	testenv.Require(t, dir, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	cases := []struct {
		file string
		is   error    // errors.Is target, or nil
		want []string // substrings of the message
	}{
		{"empty.onnx", ErrMalformed, []string{"empty file"}},
		{"truncated.onnx", ErrMalformed, nil},
		{"not_protobuf.onnx", ErrMalformed, nil},
		{"cycle.onnx", graph.ErrCycle, []string{"cycle"}},
		{"dangling.onnx", graph.ErrDangling, []string{"produced by nothing"}},
		{"unknown_ops.onnx", graph.ErrUnsupportedOp, []string{"FooOp", "BarOp", "2 node(s)"}},
		{"future_opset.onnx", ErrUnsupported, []string{"opset 99"}},
		{"old_ir.onnx", ErrUnsupported, []string{"IR version 2"}},
		{"bad_tensor_size.onnx", ErrMalformed, []string{"needs 100 elements", "has 10"}},
		{"huge_declared.onnx", ErrTooLarge, []string{"limit"}},
		{"duplicate_output.onnx", graph.ErrDuplicate, []string{"defined twice"}},
		{"shape_conflict.onnx", graph.ErrShapeConflict, []string{"inner dimensions"}},
		{"ext_escape.onnx", ErrUnsafePath, []string{"../secret.bin"}},
		{"ext_absolute.onnx", ErrUnsafePath, []string{"absolute"}},
		{"ext_too_long.onnx", ErrMalformed, nil},
		{"ext_symlink.onnx", ErrUnsafePath, []string{"link_out.bin"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			testenv.Require(t, path, "run `/usr/bin/python3 testdata/make_fixtures.py`")
			_, err := Load(path)
			if err == nil {
				t.Fatal("loaded without error")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q does not wrap %v", err, c.is)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") && c.file != "unknown_ops.onnx" {
				t.Logf("multi-line error: %q", err)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "ext_ok.onnx")); err != nil {
		t.Errorf("valid external data refused: %v", err)
	}
}

func TestLimitsRefuseBeforeAllocation(t *testing.T) {
	t.Parallel()
	path := testenv.Path(t, "testdata", "models", "ncsn_mlp", "model.onnx")
	testenv.Require(t, path, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Decode(data, Options{Limits: Limits{MaxTensorBytes: 1000}})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("per-tensor limit: got %v", err)
	}
	_, err = Decode(data, Options{Limits: Limits{MaxTotalBytes: 70_000}})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("total limit: got %v", err)
	}
}

func TestExternalDataNeedsAFolder(t *testing.T) {
	t.Parallel()
	path := testenv.Path(t, "testdata", "malformed", "ext_ok.onnx")
	testenv.Require(t, path, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data, Options{}); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("external data without a folder: got %v", err)
	}
}

// TestLongChain checks that a deep (not nested) graph loads without deep
// recursion: 5 000 chained nodes.
func TestLongChain(t *testing.T) {
	t.Parallel()
	b := graph.NewBuilder("chain")
	v := b.Input("x", graph.Float32, graph.Shape{{Param: "N"}, {Value: 4}})
	for i := 0; i < 5000; i++ {
		v = b.Op("Relu", v)[0]
	}
	b.Output("y", v, graph.Float32, graph.Shape{{Param: "N"}, {Value: 4}})
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: b.Graph()}
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Decode(data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Graph.Nodes) != 5001 {
		t.Errorf("got %d nodes", len(m2.Graph.Nodes))
	}
}

func TestSpecOfFixtures(t *testing.T) {
	t.Parallel()
	want := map[string]struct {
		x, cond string
		c       Condition
		kind    OutputKind
		reason  string // reason of the condition role
	}{
		"ncsn_mlp":        {"x", "sigma", CondSigma, OutScore, "metadata"},
		"ncsn_mlp_op13":   {"x", "sigma", CondSigma, OutScore, "inferred from name"},
		"ncsnv1_labels":   {"x", "labels", CondLabels, OutScore, "inferred from name"},
		"conv_score":      {"x", "sigma", CondSigma, OutScore, "inferred from name"},
		"conv_score_op13": {"x", "sigma", CondSigma, OutScore, "inferred from name"},
		"ddpm_eps":        {"x", "t", CondTime, OutEps, "inferred from name"},
		"energy_mlp":      {"x", "", CondNone, OutEnergy, "inferred"},
	}
	for _, dir := range testenv.Fixtures(t) {
		name := filepath.Base(dir)
		w, ok := want[name]
		if !ok {
			t.Errorf("fixture %s has no expected spec in this test", name)
			continue
		}
		m, err := Load(filepath.Join(dir, "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := Spec(m, Overrides{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := fmt.Sprint(s.XInput, s.CondInput, s.Condition, s.Kind)
		if exp := fmt.Sprint(w.x, w.cond, w.c, w.kind); got != exp {
			t.Errorf("%s: roles %s, want %s", name, got, exp)
		}
		if !strings.HasPrefix(s.Reasons["condition"], w.reason) {
			t.Errorf("%s: condition reason %q, want prefix %q", name, s.Reasons["condition"], w.reason)
		}
		if name == "ncsn_mlp" && (len(s.Sigmas) != 10 || s.DataRange == nil) {
			t.Errorf("ncsn_mlp: sigmas %v range %v not read from metadata", s.Sigmas, s.DataRange)
		}
	}
}

func TestSpecOverridesAndMetadataRoundTrip(t *testing.T) {
	t.Parallel()
	path := testenv.Path(t, "testdata", "models", "ncsn_mlp_op13", "model.onnx")
	testenv.Require(t, path, "run `/usr/bin/python3 testdata/make_fixtures.py`")
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Spec(m, Overrides{Kind: OutEps, Sigmas: []float64{2, 1, 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != OutEps || s.Reasons["kind"] != "flag" || s.Reasons["sigmas"] != "flag" {
		t.Errorf("overrides not applied: %+v", s)
	}
	if err := s.WriteMetadata(m); err != nil {
		t.Fatal(err)
	}
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Decode(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Spec(m2, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Kind != OutEps || !reflect.DeepEqual(s2.Sigmas, []float64{2, 1, 0.5}) || s2.Reasons["kind"] != "metadata" {
		t.Errorf("metadata did not round-trip: %+v", s2)
	}
	if _, err := Spec(m, Overrides{XInput: "nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown input override: %v", err)
	}
}
