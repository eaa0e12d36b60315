// Package recorded reads the cases tests check Skiff against: JSON lines recorded by running
// another implementation (Knative's code, CloudEvents sdk-go) on the same inputs. A line with a
// "comment" member says how the file was made and is not a case.
package recorded

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// Cases decodes every case of the JSON-lines file at path, failing the test when it cannot
// be read or holds fewer than atLeast cases (a truncated file must not pass quietly).
func Cases[T any](t testing.TB, path string, atLeast int) []T {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var comment struct {
			Comment string `json:"comment"`
		}
		if json.Unmarshal(sc.Bytes(), &comment) == nil && comment.Comment != "" {
			continue
		}
		var c T
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(out) < atLeast {
		t.Fatalf("%s: %d cases, want at least %d", path, len(out), atLeast)
	}
	return out
}
