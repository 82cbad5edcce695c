// Package runtimetest is the conformance suite every backend runs. A
// backend's test calls Run with its registry name:
//
//	func TestConformance(t *testing.T) { runtimetest.Run(t, "native") }
//
// Run checks the fixtures in testdata/models (model.onnx, inputs/<input>.npy,
// expected/<output>.npy, made by PyTorch) within FixtureTolerances, and ONNX's
// own node tests from Debian's libonnx-testdata within NodeTolerances, for
// every operator the backend claims (see OpClaimer). Tests no backend can
// pass, and tests a backend knowingly fails, are listed with their reasons in
// Excluded and ExcludedFor; Run logs every exclusion and prints one summary
// line per backend to stdout.
//
// Under CI=true a missing dependency (fixtures, ONNX test data, the backend's
// library) fails the test; elsewhere it skips with the command that installs it.
package runtimetest
