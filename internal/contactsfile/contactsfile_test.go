package contactsfile_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/contactsfile"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name, file, wantErr string
		want                []intercom.Contact
	}{
		{name: "JSON", file: `[{"id":"a1","role":"lead","email":"x@example.com"}]`, want: []intercom.Contact{{ID: "a1", Role: "lead", Email: "x@example.com"}}},
		{name: "YAML", file: "- external_id: '70'\n", want: []intercom.Contact{{ExternalID: "70"}}},
		{name: "empty", file: "", want: []intercom.Contact{}},
		{name: "a 1.x key", file: "- user_id: '70'\n", wantErr: "field user_id not found"},
		{name: "bad role", file: "- role: contact\n", wantErr: `role "contact", want user or lead`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := contactsfile.Load(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := contactsfile.Load(filepath.Join(t.TempDir(), "none")); !os.IsNotExist(err) {
		t.Errorf("err = %v, want a missing file", err)
	}
}
