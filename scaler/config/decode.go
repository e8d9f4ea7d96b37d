package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is a problem with one field, named by its YAML path such as
// services[0].schedule.windows[1].start.
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(path, format string, args ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf(format, args...)}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

var yamlLine = regexp.MustCompile(`^(?:yaml: )?(?:unmarshal errors:\s*)?line (\d+): `)

// MaxValues bounds the values a config may hold once YAML aliases are
// expanded: a few kilobytes of nested aliases would otherwise expand to
// billions of values (and hours of decoding) within MaxFileSize.
const MaxValues = 1 << 16

var errTooManyValues = fmt.Errorf("parse config: more than %d values once aliases are expanded", MaxValues)

// decoder counts the values it visits against MaxValues.
type decoder struct{ visited int }

// decodeStrict decodes node into v, walking the target type so that every
// unknown key and every bad value is reported with its path; it collects
// all errors instead of stopping at the first. Past MaxValues it stops
// with errTooManyValues alone.
func (d *decoder) decodeStrict(node *yaml.Node, v reflect.Value, path string) []error {
	if d.visited++; d.visited > MaxValues {
		return []error{errTooManyValues}
	}
	if node.Kind == yaml.DocumentNode {
		if len(node.Content) == 0 {
			return nil
		}
		node = node.Content[0]
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	if node.Tag == "!!null" {
		return nil
	}
	t := v.Type()
	if reflect.PointerTo(t).Implements(unmarshalerType) || t.Kind() != reflect.Struct && t.Kind() != reflect.Slice && t.Kind() != reflect.Pointer && t.Kind() != reflect.Map {
		if err := node.Decode(v.Addr().Interface()); err != nil {
			return []error{&FieldError{Path: path, Err: cleanYAMLError(err, node)}}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.decodeStrict(node, v.Elem(), path)
	case reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			return []error{fieldErr(path, "expected a list (line %d)", node.Line)}
		}
		s := reflect.MakeSlice(t, len(node.Content), len(node.Content))
		var errs []error
		for i, item := range node.Content {
			errs = append(errs, d.decodeStrict(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		v.Set(s)
		return errs
	}
	if node.Kind != yaml.MappingNode {
		return []error{fieldErr(path, "expected a mapping (line %d)", node.Line)}
	}
	if t.Kind() == reflect.Map {
		return d.decodeMap(node, v, path)
	}
	fields := map[string]int{}
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			fields[name] = i
		}
	}
	var errs []error
	seen := map[string]int{} // key -> line of its first occurrence
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, val := node.Content[i].Value, node.Content[i+1]
		if first, dup := seen[key]; dup {
			errs = append(errs, fieldErr(join(path, key), "duplicate key (line %d; first at line %d)", node.Content[i].Line, first))
			continue
		}
		seen[key] = node.Content[i].Line
		fi, ok := fields[key]
		if !ok {
			errs = append(errs, fieldErr(join(path, key), "unknown key (line %d)", node.Content[i].Line))
			continue
		}
		errs = append(errs, d.decodeStrict(val, v.Field(fi), join(path, key))...)
	}
	return errs
}

// decodeMap decodes a mapping into v, a map (container.env, labels): keys
// are checked for duplicates through a set, where yaml.v3 compares every
// pair of keys (a 1 MiB env took minutes). A merge key ("<<") is refused,
// as it is in every other mapping of the file.
func (d *decoder) decodeMap(node *yaml.Node, v reflect.Value, path string) []error {
	t := v.Type()
	m := reflect.MakeMapWithSize(t, len(node.Content)/2)
	var errs []error
	seen := map[string]int{} // key -> line of its first occurrence
	for i := 0; i+1 < len(node.Content); i += 2 {
		keyNode, val := node.Content[i], node.Content[i+1]
		p := mapPath(path, keyNode.Value)
		if keyNode.Tag == "!!merge" {
			errs = append(errs, fieldErr(p, "merge keys are not supported: write the entries out (line %d)", keyNode.Line))
			continue
		}
		if first, dup := seen[keyNode.Value]; dup {
			errs = append(errs, fieldErr(p, "duplicate key (line %d; first at line %d)", keyNode.Line, first))
			continue
		}
		seen[keyNode.Value] = keyNode.Line
		key, elem := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
		if err := keyNode.Decode(key.Addr().Interface()); err != nil { // a key is no value of its own
			errs = append(errs, &FieldError{Path: p, Err: cleanYAMLError(err, keyNode)})
			continue
		}
		verrs := d.decodeStrict(val, elem, p)
		if errs = append(errs, verrs...); len(verrs) == 0 {
			m.SetMapIndex(key, elem)
		}
	}
	v.Set(m)
	return errs
}

// cleanYAMLError turns yaml.v3's "yaml: unmarshal errors:\n  line 3: ..."
// into "... (line 3)", since the path already says where.
func cleanYAMLError(err error, node *yaml.Node) error {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = yamlLine.ReplaceAllString(strings.TrimSpace(msg), "")
	return fmt.Errorf("%s (line %d)", msg, node.Line)
}

// notDecoded returns the problems of validated that are not about a field
// (or a part of one) whose decoding already failed: a value that did not
// decode is zero, and "required" on top of "invalid duration" says nothing.
func notDecoded(decodeErrs []error, validated error) []error {
	if validated == nil {
		return nil
	}
	failed := map[string]bool{}
	for _, err := range decodeErrs {
		if fe, ok := err.(*FieldError); ok {
			failed[fe.Path] = true
		}
	}
	var out []error
	for _, err := range unjoin(validated) {
		fe, ok := err.(*FieldError)
		if !ok || !within(fe.Path, failed) {
			out = append(out, err)
		}
	}
	return out
}

// within reports whether path is one of prefixes or below one of them
// ("" is the whole document): path and each of its parents (cut at a '.'
// or '[') are looked up, so many errors cost no more than a few each.
func within(path string, prefixes map[string]bool) bool {
	if prefixes[""] {
		return true
	}
	for p := path; p != ""; {
		if prefixes[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
	return false
}

// unjoin lists the errors an errors.Join holds (or err alone).
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// documentLine is the first line of a document's content.
func documentLine(doc *yaml.Node) int {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0].Line
	}
	return doc.Line
}
