package runtimetest

// Excluded lists ONNX node tests that no backend is expected to pass, with
// the reason. Tests are also excluded, without being listed here, when the
// importer refuses the model (an opset below 11, sequence or optional
// values), when they use ops the backend does not claim (see OpClaimer) or
// ops outside the default domain, or when their inputs or outputs are of an
// element type sessions do not exchange (float64, float16, int32, uint8,
// string, …): Run logs every exclusion with its reason. Nothing else
// excludes a test: a claimed op the backend refuses is a failure unless
// Refused lists it.
var Excluded = map[string]string{
	// Random outputs: the references come from numpy's generator.
	"test_bernoulli":                     "random output",
	"test_bernoulli_double":              "random output",
	"test_bernoulli_double_expanded":     "random output",
	"test_bernoulli_expanded":            "random output",
	"test_bernoulli_seed":                "random output (the seed's stream is numpy's)",
	"test_bernoulli_seed_expanded":       "random output (the seed's stream is numpy's)",
	"test_training_dropout":              "training-mode dropout: random mask",
	"test_training_dropout_default":      "training-mode dropout: random mask",
	"test_training_dropout_default_mask": "training-mode dropout: random mask",
	"test_training_dropout_mask":         "training-mode dropout: random mask",
}

// ExcludedFor lists, per backend, node tests the backend knowingly fails,
// with the reason.
var ExcludedFor = map[string]map[string]string{
	"ort":      onnxruntimeKnown,
	"ort-cuda": onnxruntimeKnown,
}

// onnxruntimeKnown are the node tests onnxruntime 1.30 (CPU) fails.
var onnxruntimeKnown = map[string]string{
	"test_gru_batchwise":        onnxruntimeNoBatchwiseRNN,
	"test_lstm_batchwise":       onnxruntimeNoBatchwiseRNN,
	"test_simple_rnn_batchwise": onnxruntimeNoBatchwiseRNN,
	"test_maxunpool_export_with_output_shape": "onnxruntime 1.30 places the unpooled values in a different " +
		"layout than the ONNX 1.12 reference when output_shape is given",
	"test_resize_downsample_scales_cubic_align_corners":  onnxruntimeAlignCorners,
	"test_resize_downsample_scales_linear_align_corners": onnxruntimeAlignCorners,
}

const (
	onnxruntimeNoBatchwiseRNN = "onnxruntime's CPU RNN kernels refuse layout=1 " +
		"(\"Batchwise recurrent operations (layout == 1) are not supported\")"
	onnxruntimeAlignCorners = "onnxruntime 1.30 and the ONNX 1.12 reference disagree on align_corners " +
		"coordinates when Resize is given scales (e.g. 4 where the reference has 3.142857)"
)

// Refused lists, per backend, node tests of ops the backend claims whose
// attribute or mode it does not implement: its Prepare refuses them with
// graph.ErrUnsupportedOp and a message that says what. The suite checks
// that it still refuses each (a stale entry fails); a claimed op's test
// refused without an entry here is a failure.
var Refused = map[string]map[string]string{
	"native": {
		"test_batchnorm_epsilon_training_mode":            nativeNoTrainingBN,
		"test_batchnorm_example_training_mode":            nativeNoTrainingBN,
		"test_maxpool_with_argmax_2d_precomputed_strides": "MaxPool's storage_order=1 (column-major argmax indices) is not implemented",
	},
}

const (
	nativeNoTrainingBN = "BatchNormalization in training mode (batch statistics, running-mean outputs) is not implemented; " +
		"score models run in inference mode"
)

// OpCasesExcludedFor lists, per backend, the suite's own OpCases the
// backend rightly refuses, with the reason.
var OpCasesExcludedFor = map[string]map[string]string{
	"ort":      onnxruntimeOpCases,
	"ort-cuda": onnxruntimeOpCases,
}

var onnxruntimeOpCases = map[string]string{
	"Upsample_nearest": "ONNX deprecated Upsample in opset 10 and onnxruntime refuses it from then on; " +
		"native still runs it (the importer takes opsets from 11, so only such models can carry it)",
}

// Loosened is a float32 tolerance for one node test, with the reason.
type Loosened struct {
	Float32 Tolerance
	Reason  string
}

// NodeLoosened lists node tests compared with a float32 tolerance other than
// NodeTolerances'. They still run and count as passed or failed.
var NodeLoosened = map[string]Loosened{
	"test_dft":              fftRoundOff,
	"test_dft_axis":         fftRoundOff,
	"test_dft_inverse":      fftRoundOff,
	"test_stft":             fftRoundOff,
	"test_stft_with_window": fftRoundOff,
}

var fftRoundOff = Loosened{
	Float32: Tolerance{RTol: 1e-3, ATol: 1e-7, STol: 1e-6},
	Reason: "float32 FFT round-off: the float64 reference has exact zeros (imaginary parts of real signals) " +
		"where float32 gives about 1e-6 of the spectrum's largest magnitude",
}
