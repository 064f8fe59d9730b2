package sqlite

import (
	"testing"

	"github.com/kairos-fl/kairos/store/storetest"
)

func TestAuditQueryConformance(t *testing.T) {
	storetest.RunAuditQuery(t, func(t *testing.T) storetest.AuditQueryStore { return openTest(t) })
}
