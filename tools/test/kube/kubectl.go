// Package kube drives a real cluster for the end-to-end suites and the
// benchmarks: kubectl (the tools' one wrapper, kubectl.Kubectl) with helpers
// that read objects as JSON, wait for conditions by polling, and sample
// the pods' resource use.
package kube

import (
	"context"

	"scalable-app/tools/internal/kubectl"
)

// Kubectl is kubectl.Kubectl with the suites' object helpers.
type Kubectl struct{ kubectl.Kubectl }

// InNamespace is kubectl.Kubectl.InNamespace, keeping the helpers.
func (k Kubectl) InNamespace(ctx context.Context, dir, ns string) (Kubectl, error) {
	n, err := k.Kubectl.InNamespace(ctx, dir, ns)
	return Kubectl{n}, err
}
