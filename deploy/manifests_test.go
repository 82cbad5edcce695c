package deploy

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// docs decodes every object of a manifest file strictly — an unknown or
// misspelt field, or a value of the wrong type, fails — into its API type.
func docs(t *testing.T, path string) []any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	for _, d := range strings.Split(string(b), "\n---\n") {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(d), &tm); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		case "v1 Service":
			obj = &corev1.Service{}
		case "batch/v1 Job":
			obj = &batchv1.Job{}
		default:
			t.Fatalf("%s: unexpected object %s %s", path, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(d), obj); err != nil {
			t.Fatalf("%s: %s: %v", path, tm.Kind, err)
		}
		out = append(out, obj)
	}
	return out
}

func TestServeManifest(t *testing.T) {
	objs := docs(t, "serve.yaml")
	if len(objs) != 2 {
		t.Fatalf("%d objects, want a Deployment and a Service", len(objs))
	}
	dep, ok1 := objs[0].(*appsv1.Deployment)
	svc, ok2 := objs[1].(*corev1.Service)
	if !ok1 || !ok2 {
		t.Fatalf("want a Deployment then a Service, got %T, %T", objs[0], objs[1])
	}
	pod := dep.Spec.Template
	for k, v := range dep.Spec.Selector.MatchLabels {
		if pod.Labels[k] != v {
			t.Errorf("the Deployment's selector %s=%s does not match its pods", k, v)
		}
	}
	for k, v := range svc.Spec.Selector {
		if pod.Labels[k] != v {
			t.Errorf("the Service's selector %s=%s does not match the pods", k, v)
		}
	}
	c := pod.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" || !slices.Contains(c.Args, "--models=/models") {
		t.Errorf("container args %v: want serve --models=/models …", c.Args)
	}
	if !slices.Contains(c.Args, "--addr=0.0.0.0:8080") || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("serve must listen on the container port 8080: %v", c.Args)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: %s, %s", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	if svc.Spec.Ports[0].TargetPort.String() != c.Ports[0].Name {
		t.Errorf("the Service targets %s, the container's port is %s", svc.Spec.Ports[0].TargetPort.String(), c.Ports[0].Name)
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 30 {
		t.Errorf("the grace period must outlast --drain=30s")
	}
}

func TestSampleJobManifest(t *testing.T) {
	objs := docs(t, "sample-job.yaml")
	job, ok := objs[0].(*batchv1.Job)
	if len(objs) != 1 || !ok {
		t.Fatalf("want one Job, got %d objects", len(objs))
	}
	s := job.Spec
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
		t.Fatal("the Job must be Indexed, so each pod knows its shard")
	}
	if s.Completions == nil || s.Parallelism == nil || *s.Completions != *s.Parallelism {
		t.Fatal("completions and parallelism must both be K")
	}
	k := *s.Completions
	cmd := strings.Join(s.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{`--shard "$JOB_COMPLETION_INDEX/` + itoa(k) + `"`, `samples-$JOB_COMPLETION_INDEX-of-` + itoa(k) + `.npy`} {
		if !strings.Contains(cmd, want) {
			t.Errorf("the command %q lacks %s", cmd, want)
		}
	}
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %s", s.Template.Spec.RestartPolicy)
	}
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }

// The strict decoding is what catches a misspelt field.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	bad := "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n"
	if err := yaml.UnmarshalStrict([]byte(bad), &appsv1.Deployment{}); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("a misspelt field decoded: %v", err)
	}
}
