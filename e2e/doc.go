// Package e2e holds end-to-end tests that run the built sluice binary:
// crash (kill -9) durability, restart and log rewrite.
package e2e
