// Package deploy holds the Kubernetes manifests for ebmrun and the test that
// checks them against the Kubernetes API types, without a cluster or
// kubectl. It is a module of its own so that ebmrun itself does not depend
// on k8s.io/api.
package deploy
