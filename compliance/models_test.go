package compliance_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/compliance"
)

func TestPolicyHistory(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 11, 1, h, 0, 0, 0, time.UTC) }
	models := []protocol.ModelVersion{
		{Version: 1, PolicyHash: "sha256:p1", PublishedAt: at(1)},
		{Version: 2, PolicyHash: "sha256:p1", PublishedAt: at(2)},
		{Version: 3, PolicyHash: "sha256:p2", PublishedAt: at(3)},
		{Version: 4, PolicyHash: "sha256:p1", PublishedAt: at(4)}, // back to p1
	}
	tests := []struct {
		name    string
		current string
		want    []compliance.PolicySeen
	}{
		{"current seen", "sha256:p2", []compliance.PolicySeen{
			{Hash: "sha256:p1", FirstVersion: 1, LastVersion: 4, Versions: 3, FirstSeen: at(1), LastSeen: at(4)},
			{Hash: "sha256:p2", FirstVersion: 3, LastVersion: 3, Versions: 1, FirstSeen: at(3), LastSeen: at(3), Current: true},
		}},
		{"current new", "sha256:p3", []compliance.PolicySeen{
			{Hash: "sha256:p1", FirstVersion: 1, LastVersion: 4, Versions: 3, FirstSeen: at(1), LastSeen: at(4)},
			{Hash: "sha256:p2", FirstVersion: 3, LastVersion: 3, Versions: 1, FirstSeen: at(3), LastSeen: at(3)},
			{Hash: "sha256:p3", Current: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compliance.PolicyHistory(models, tt.current); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
