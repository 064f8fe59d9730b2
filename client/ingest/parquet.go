package ingest

import (
	"context"
	"errors"

	"github.com/kairos-fl/kairos/model"
)

func readParquet(ctx context.Context, p, name string, size int64, opts *Options, emit func(model.Event) error) (Report, error) {
	return Report{}, errors.New("todo")
}
