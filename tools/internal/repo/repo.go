// Package repo finds the checkout the tools run in. Tools and tests start in
// different folders (a test runs in its package's folder, `go run` wherever
// the user is), and resolve the manifests, Dockerfile and service sources
// against the repository root.
package repo

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ServiceModule is the module path of the service, in the root go.mod.
const ServiceModule = "scalable-app"

// Root walks up from the working directory to the repository root: the
// folder whose go.mod declares the service's module.
func Root() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository root: %w", err)
	}
	return RootFrom(wd)
}

// RootFrom is Root starting at dir.
func RootFrom(dir string) (string, error) {
	start := dir
	for {
		if declaresService(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the repository root: no go.mod of module " + ServiceModule + " above " + start + ": run this from inside the checkout")
		}
		dir = parent
	}
}

func declaresService(goMod string) bool {
	f, err := os.Open(goMod)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && fields[0] == "module" {
			return fields[1] == ServiceModule
		}
	}
	return false
}
