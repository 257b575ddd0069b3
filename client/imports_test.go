package client

import (
	"os/exec"
	"strings"
	"testing"
)

// The client is for programs that are not the server: it must build without
// any of the server's packages.
func TestImportsNoServerPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "sluice/client").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if (pkg == "sluice" || strings.HasPrefix(pkg, "sluice/")) && pkg != "sluice/client" {
			t.Errorf("sluice/client depends on %s", pkg)
		}
	}
}
