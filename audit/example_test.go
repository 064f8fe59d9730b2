package audit_test

import (
	"fmt"

	"github.com/kairos-fl/kairos/audit"
)

// A reviewer who knows a customer id finds the entries that mention it by
// its HMAC under the audit key (PostgreSQL:
// WHERE identifiers @> '{"customer": "hmac-sha256:…"}').
func ExampleHashIdentifier() {
	key := []byte("0123456789abcdef") // the aggregator's audit-hmac key
	fmt.Println(audit.HashIdentifier(key, "m-42"))
	// Output: hmac-sha256:5d8b850fe562a456e1ef117bf4a8babfbfeb1865f32c710e15a65cd80ff3a5da
}
