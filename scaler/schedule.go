package scaler

import (
	"time"

	"github.com/slotscaler/slotscaler/scaler/config"
)

// LimitsAt returns the min/max replicas in force at t for a service:
// inside a schedule window that window's limits, outside them the
// schedule's "outside" limits, and the service's own min/max without a
// schedule. Windows are read in the schedule's time zone, so DST changes
// move them with the wall clock. A window whose end is before its start
// runs overnight and belongs to the day it starts. When windows overlap,
// the highest min and the highest max apply.
func LimitsAt(s config.Service, t time.Time) Limits {
	sc := s.Schedule
	if sc == nil {
		return Limits{Min: s.MinReplicas, Max: s.MaxReplicas, Window: -1}
	}
	local := t.In(sc.Timezone.Location)
	minute := config.TimeOfDay(local.Hour()*60 + local.Minute())
	today, yesterday := local.Weekday(), (local.Weekday()+6)%7
	lim := Limits{Min: sc.Outside.MinReplicas, Max: sc.Outside.MaxReplicas, Window: -1}
	for i, w := range sc.Windows {
		var active bool
		if w.Start < w.End {
			active = w.Days.Has(today) && minute >= w.Start && minute < w.End
		} else {
			active = w.Days.Has(today) && minute >= w.Start || w.Days.Has(yesterday) && minute < w.End
		}
		if !active {
			continue
		}
		if lim.Window < 0 {
			lim = Limits{Min: w.MinReplicas, Max: w.MaxReplicas, Window: i}
			continue
		}
		lim.Min, lim.Max = max(lim.Min, w.MinReplicas), max(lim.Max, w.MaxReplicas)
	}
	return lim
}
