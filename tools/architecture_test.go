// The tools module's layout rules, checked against what the packages really
// import (ARCHITECTURE.md explains them).
package tools_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "scalable-app/tools"

// imports maps each package of the tools module to the packages of the
// repository (service or tools) it imports directly, test files included.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-tags", "e2e",
		"-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}`,
		"./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 0 {
			continue
		}
		var own []string
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, "scalable-app/") {
				own = append(own, imp)
			}
		}
		m[fields[0]] = own
	}
	return m
}

func under(pkg, dir string) bool {
	p := module + "/" + dir
	return pkg == p || strings.HasPrefix(pkg, p+"/")
}

func TestImportDirection(t *testing.T) {
	all := imports(t)
	if len(all) < 20 {
		t.Fatalf("go list found only %d packages; the check is not looking at the module", len(all))
	}
	devCommands := []string{"cmd/hotreload", "cmd/devloop"}
	for pkg, deps := range all {
		isDev := under(pkg, "dev")
		for _, c := range devCommands {
			isDev = isDev || under(pkg, c)
		}
		for _, dep := range deps {
			switch {
			case under(pkg, "internal") && (under(dep, "dev") || under(dep, "test") || under(dep, "ci") || under(dep, "cmd")):
				t.Errorf("%s (shared plumbing) imports %s: plumbing may import only plumbing and the service", pkg, dep)
			case isDev && under(dep, "test"):
				t.Errorf("%s (a developer tool) imports %s (test infrastructure): the dev tools ship to users without the test harness", pkg, dep)
			case isDev && under(dep, "ci"):
				t.Errorf("%s (a developer tool) imports %s (delivery): the dev tools ship to users without the pipeline", pkg, dep)
			case under(pkg, "test") && !under(pkg, "test/e2e") && under(dep, "ci"):
				t.Errorf("%s (test infrastructure) imports %s (delivery): only the e2e suites test the pipeline; the pipeline uses the test libraries, not the other way", pkg, dep)
			case under(pkg, "ci") && under(dep, "test/e2e"):
				t.Errorf("%s (delivery) imports the e2e suite %s", pkg, dep)
			case under(dep, "cmd"):
				t.Errorf("%s imports the command %s: commands are thin mains, logic lives in packages", pkg, dep)
			}
		}
	}
}
