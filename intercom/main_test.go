package intercom_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test closes its clients and fakes; a goroutine left behind is a
// leaked connection or timer.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
