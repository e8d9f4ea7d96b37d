package main

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// configKeys lists every key of the config model as a path: "interval",
// "docker.hosts[].max_containers", "services[].schedule.windows[].days".
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		keys = append(keys, path)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			keys = append(keys, configKeys(ft.Elem(), path+"[].")...)
		} else if ft.Kind() == reflect.Struct && ft.NumField() > 0 && ft.Field(0).Tag.Get("yaml") != "" {
			keys = append(keys, configKeys(ft, path+".")...)
		}
	}
	return keys
}

// The README's configuration reference must list every key of the model,
// so the two cannot drift apart.
func TestReadmeConfigReferenceListsEveryKey(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	_, ref, ok := strings.Cut(readme, "## Configuration reference")
	if !ok {
		t.Fatal("README has no \"## Configuration reference\" section")
	}
	ref, _, _ = strings.Cut(ref, "\n## ")
	keys := configKeys(reflect.TypeOf(config.Config{}), "")
	if len(keys) < 40 {
		t.Fatalf("only %d keys found in the model: the walk is broken", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(ref, "`"+k+"`") {
			t.Errorf("configuration reference lacks `%s`", k)
		}
	}
}
