//go:build linux

// Package e2e holds end-to-end tests of claimctl's promises: the real
// claimctl binary, real etcd members, real child processes, and a TCP proxy
// that cuts the network between claimctl and etcd. It has no non-test code.
package e2e
