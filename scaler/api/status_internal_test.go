package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/slotscaler/slotscaler/scaler"
)

func TestStatusCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("pin web: %w", scaler.ErrNotSaved), http.StatusServiceUnavailable},
		{fmt.Errorf("pin web: %w", errors.Join(scaler.ErrInvalid, scaler.ErrNotSaved)), http.StatusServiceUnavailable},
		{fmt.Errorf("pin web: %w", scaler.ErrInvalid), http.StatusBadRequest},
		{badRequest("x"), http.StatusBadRequest},
		{forbidden("x"), http.StatusForbidden},
		{fmt.Errorf("web: %w", scaler.ErrUnknown), http.StatusNotFound},
		{fmt.Errorf("web: %w", scaler.ErrConflict), http.StatusConflict},
		{&http.MaxBytesError{Limit: 1}, http.StatusRequestEntityTooLarge},
		{errors.New("docker: connection refused"), http.StatusBadGateway},
	} {
		if got := status(c.err); got != c.want {
			t.Errorf("status(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
