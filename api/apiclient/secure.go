package apiclient

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// SecureStatus returns where secure round roundID stands for the token's
// merchant and the aggregator's message to it in the current stage.
func (c *Client) SecureStatus(ctx context.Context, roundID string) (protocol.SecureStatus, error) {
	var st protocol.SecureStatus
	if roundID == "" {
		return st, errors.New("secure status: empty round id")
	}
	err := c.do(ctx, http.MethodGet, "/v1/rounds/"+url.PathEscape(roundID)+"/secure", nil, "", &st)
	return st, err
}

// SubmitSecure uploads a sealed secure-aggregation message for round roundID.
func (c *Client) SubmitSecure(ctx context.Context, roundID string, envelope []byte) (protocol.SecureReceipt, error) {
	var rc protocol.SecureReceipt
	if roundID == "" {
		return rc, errors.New("submit secure message: empty round id")
	}
	err := c.do(ctx, http.MethodPost, "/v1/rounds/"+url.PathEscape(roundID)+"/secure",
		bytes.NewReader(envelope), "application/octet-stream", &rc)
	return rc, err
}
