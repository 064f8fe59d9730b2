package evaluate

import "errors"

// bgnbdMethod is wired to model/bgnbd once that package lands.
func bgnbdMethod(histories, int) (method, error) {
	return method{}, errors.New("bgnbd baseline not available yet")
}
