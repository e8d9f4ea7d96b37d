package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // IANA zones on machines without /usr/share/zoneinfo

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "1s", "2m30s".
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("invalid duration %q: want e.g. 500ms, 10s, 2m", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Location is an IANA time zone name such as Asia/Dhaka.
type Location struct {
	*time.Location
	Name string
}

// UnmarshalYAML loads the zone from the embedded tz database.
func (l *Location) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" || n.Value == "Local" {
		return fmt.Errorf("time zone must be an IANA name such as Europe/Berlin, got %q", n.Value)
	}
	loc, err := time.LoadLocation(n.Value)
	if err != nil {
		return fmt.Errorf("unknown time zone %q", n.Value)
	}
	l.Location, l.Name = loc, n.Value
	return nil
}

// TimeOfDay is "HH:MM" in a schedule's zone, as minutes after midnight.
// "24:00" is allowed as an end.
type TimeOfDay int

// UnmarshalYAML parses HH:MM.
func (t *TimeOfDay) UnmarshalYAML(n *yaml.Node) error {
	h, m, ok := strings.Cut(n.Value, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && mm != 0 {
		return fmt.Errorf("invalid time %q: want HH:MM between 00:00 and 24:00", n.Value)
	}
	*t = TimeOfDay(hh*60 + mm)
	return nil
}

func (t TimeOfDay) String() string { return fmt.Sprintf("%02d:%02d", int(t)/60, int(t)%60) }

// Days is a set of weekdays: "Mon-Fri", "Sat,Sun", "Fri-Mon", "daily".
type Days [7]bool

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// UnmarshalYAML parses comma-separated days and ranges; ranges may wrap
// over the weekend (Fri-Mon).
func (d *Days) UnmarshalYAML(n *yaml.Node) error {
	v := strings.ToLower(strings.TrimSpace(n.Value))
	if v == "daily" || v == "*" {
		*d = Days{true, true, true, true, true, true, true}
		return nil
	}
	var out Days
	for part := range strings.SplitSeq(v, ",") {
		from, to, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, ok1 := dayNames[from]
		b, ok2 := a, true
		if isRange {
			b, ok2 = dayNames[to]
		}
		if !ok1 || !ok2 {
			return fmt.Errorf("invalid days %q: want e.g. Mon-Fri, Sat,Sun or daily", n.Value)
		}
		for day := a; ; day = (day + 1) % 7 {
			out[day] = true
			if day == b {
				break
			}
		}
	}
	*d = out
	return nil
}

// Has reports whether the set includes day.
func (d Days) Has(day time.Weekday) bool { return d[day] }

// ByteSize is a memory size: "256m", "1g", "512k" or bytes.
type ByteSize int64

// UnmarshalYAML parses a Docker-style size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v := strings.ToLower(strings.TrimSpace(n.Value))
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "k"):
		mult, v = 1<<10, strings.TrimSuffix(v, "k")
	case strings.HasSuffix(v, "m"):
		mult, v = 1<<20, strings.TrimSuffix(v, "m")
	case strings.HasSuffix(v, "g"):
		mult, v = 1<<30, strings.TrimSuffix(v, "g")
	}
	num, err := strconv.ParseInt(v, 10, 64)
	if err != nil || num < 0 {
		return fmt.Errorf("invalid size %q: want e.g. 256m or 1g", n.Value)
	}
	if num > math.MaxInt64/mult {
		return fmt.Errorf("size %q does not fit in 64 bits", n.Value)
	}
	*b = ByteSize(num * mult)
	return nil
}

// StringList is one string or a list of strings.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (s *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = StringList{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return fmt.Errorf("want a string or a list of strings")
	}
	*s = list
	return nil
}
