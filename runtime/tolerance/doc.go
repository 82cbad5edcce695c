// Package tolerance compares tensors against references within stated
// tolerances: the one definition of "the same output" that the conformance
// suite (runtime/runtimetest) and `ebmrun validate` share. It is a plain
// package, not a test helper, so the command links it without the testing
// package.
//
//	err := tolerance.Compare(got, want, tolerance.FixtureTolerances)
package tolerance
