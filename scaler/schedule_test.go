package scaler

import (
	"testing"
	"time"

	"github.com/slotscaler/slotscaler/scaler/config"
)

func zone(t *testing.T, name string) config.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return config.Location{Location: loc, Name: name}
}

func hm(h, m int) config.TimeOfDay { return config.TimeOfDay(h*60 + m) }

var weekdays = config.Days{false, true, true, true, true, true, false}

func TestLimitsAt(t *testing.T) {
	service := func(tz string, windows ...config.Window) config.Service {
		return config.Service{MinReplicas: 1, MaxReplicas: 10, Schedule: &config.Schedule{
			Timezone: zone(t, tz), Windows: windows, Outside: config.Limits{MinReplicas: 1, MaxReplicas: 2},
		}}
	}
	office := config.Window{Days: weekdays, Start: hm(9, 0), End: hm(17, 0), MinReplicas: 3, MaxReplicas: 8}
	sunday := config.Days{true, false, false, false, false, false, false}
	night := config.Window{Days: sunday, Start: hm(22, 0), End: hm(6, 0), MinReplicas: 4, MaxReplicas: 6} // Sunday night into Monday
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tt := range []struct {
		name    string
		svc     config.Service
		at      string
		inside  bool
		min     int
		max     int
		comment string
	}{
		{"dhaka office hours", service("Asia/Dhaka", office), "2026-11-27T03:30:00Z", true, 3, 8, "Fri 09:30 +06"},
		{"dhaka before opening", service("Asia/Dhaka", office), "2026-11-27T02:59:00Z", false, 1, 2, "Fri 08:59"},
		{"dhaka end is exclusive", service("Asia/Dhaka", office), "2026-11-27T11:00:00Z", false, 1, 2, "Fri 17:00"},
		{"dhaka saturday", service("Asia/Dhaka", office), "2026-11-28T04:00:00Z", false, 1, 2, "Sat 10:00"},
		// New York: DST starts 2026-03-08, ends 2026-11-01.
		{"new york EST monday 09:00", service("America/New_York", office), "2026-03-02T14:00:00Z", true, 3, 8, "EST = UTC-5"},
		{"new york EDT monday 09:00", service("America/New_York", office), "2026-03-09T13:00:00Z", true, 3, 8, "EDT = UTC-4"},
		{"new york EDT 08:30 is outside", service("America/New_York", office), "2026-03-09T12:30:00Z", false, 1, 2, "would be 07:30 EST"},
		{"new york after fall back", service("America/New_York", office), "2026-11-02T14:00:00Z", true, 3, 8, "Mon 09:00 EST"},
		{"new york 16:30 EST inside", service("America/New_York", office), "2026-11-02T21:30:00Z", true, 3, 8, "16:30 EST"},
		{"new york fall back 17:30 EST outside", service("America/New_York", office), "2026-11-02T22:30:00Z", false, 1, 2, "17:30 EST"},
		// Melbourne: DST ends 2026-04-05, starts 2026-10-04.
		{"melbourne AEDT monday 09:00", service("Australia/Melbourne", office), "2026-03-29T22:00:00Z", true, 3, 8, "Mon 30 Mar 09:00 +11"},
		{"melbourne AEST monday 09:00", service("Australia/Melbourne", office), "2026-04-05T23:00:00Z", true, 3, 8, "Mon 6 Apr 09:00 +10"},
		{"melbourne AEST 08:30", service("Australia/Melbourne", office), "2026-04-05T22:30:00Z", false, 1, 2, "Mon 08:30 +10"},
		{"melbourne AEDT again", service("Australia/Melbourne", office), "2026-10-04T22:00:00Z", true, 3, 8, "Mon 5 Oct 09:00 +11"},
		{"melbourne AEDT 08:30", service("Australia/Melbourne", office), "2026-10-04T21:30:00Z", false, 1, 2, "Mon 08:30 +11"},
		// Overnight window Sunday 22:00 to Monday 06:00 (New York).
		{"overnight sunday 23:00", service("America/New_York", night), "2026-11-23T04:00:00Z", true, 4, 6, "Sun 22 Nov 23:00"},
		{"overnight monday 05:59", service("America/New_York", night), "2026-11-23T10:59:00Z", true, 4, 6, "Mon 05:59"},
		{"overnight monday 06:00 ends", service("America/New_York", night), "2026-11-23T11:00:00Z", false, 1, 2, "Mon 06:00"},
		{"overnight saturday 23:00 not in", service("America/New_York", night), "2026-11-22T04:00:00Z", false, 1, 2, "Sat 23:00"},
		{"overnight monday 23:00 not in", service("America/New_York", night), "2026-11-24T04:00:00Z", false, 1, 2, "Mon 23:00"},
		{"overlap takes highest", service("America/New_York", night, config.Window{Days: config.Days{true, true}, Start: hm(0, 0), End: hm(24, 0), MinReplicas: 5, MaxReplicas: 5}), "2026-11-23T10:00:00Z", true, 5, 6, "Mon 05:00"},
		{"no schedule", config.Service{MinReplicas: 2, MaxReplicas: 7}, "2026-11-23T10:00:00Z", false, 2, 7, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := LimitsAt(tt.svc, utc(tt.at))
			if got.Min != tt.min || got.Max != tt.max || (got.Window >= 0) != tt.inside {
				t.Errorf("LimitsAt(%s, %s) = %+v, want min %d max %d inside %v", tt.at, tt.comment, got, tt.min, tt.max, tt.inside)
			}
		})
	}
}
