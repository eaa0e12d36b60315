package eventfilter

import (
	"testing"

	"github.com/skiff-dev/skiff/internal/recorded"
)

// TestCESQLAgainstSDKGo runs testdata/cesql-sdk-go.jsonl: 2,000 random expressions with what
// sdk-go's sql/v2 (Knative's CESQL engine) answered. Skiff must refuse the same ones, and
// for the others give the same value (when sdk-go's evaluation did not fail) and the same
// filter result. Which error kind is reported when both operands of an operator fail may
// differ (sdk-go evaluates both before casting).
func TestCESQLAgainstSDKGo(t *testing.T) {
	ev := Event{Attributes: map[string]string{"specversion": "1.0", "id": "myId", "source": "localhost.localdomain", "type": "myType",
		"subject": "mySubject", "myext": "my extension", "myint": "10", "mybool": "true"}}
	type cesqlCase struct {
		Expr  string `json:"expr"`
		Parse string `json:"parse"`
		Value string `json:"value"`
		Error string `json:"error"`
		Pass  bool   `json:"pass"`
	}
	for _, c := range recorded.Cases[cesqlCase](t, "testdata/cesql-sdk-go.jsonl", 2000) {
		expr, err := ParseCESQL(c.Expr)
		if c.Parse != "" {
			if err == nil {
				t.Errorf("%q parses; sdk-go refuses it (%s)", c.Expr, c.Parse)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v; sdk-go parses it", c.Expr, err)
			continue
		}
		v, evalErr := expr.Evaluate(ev)
		if (evalErr != nil) != (c.Error != "") {
			t.Errorf("%q: error %v; sdk-go's %q", c.Expr, evalErr, c.Error)
		}
		if c.Error == "" && v.String() != c.Value {
			t.Errorf("%q = %s; sdk-go %s", c.Expr, v, c.Value)
		}
		if got := expr.Match(ev); got != c.Pass {
			t.Errorf("%q: Match = %v; sdk-go's filter %v", c.Expr, got, c.Pass)
		}
	}
}
