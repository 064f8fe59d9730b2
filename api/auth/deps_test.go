package auth

import (
	"testing"

	"github.com/kairos-fl/kairos/internal/importcheck"
)

// TestImports keeps the package small: the standard library and the JWT
// library only, so the API, the client and partner apps can all use it.
func TestImports(t *testing.T) {
	importcheck.Check(t, "auth", "github.com/golang-jwt/jwt/v5")
}
