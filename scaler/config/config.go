package config

import (
	"net/netip"
	"time"
)

// Config is slotscaler.yaml.
type Config struct {
	HAProxy  HAProxy   `yaml:"haproxy"`
	Docker   Docker    `yaml:"docker"`
	API      API       `yaml:"api"`
	StateDir string    `yaml:"state_dir"` // where intents are kept across restarts
	Interval Duration  `yaml:"interval"`  // control loop period (default 1s)
	Services []Service `yaml:"services"`
}

// HAProxy says how to reach HAProxy.
type HAProxy struct {
	RuntimeAPI      StringList `yaml:"runtime_api"`       // unix:///path or tcp://host:port; several sync several LBs
	ConfigFile      string     `yaml:"config_file"`       // optional: check backends and slots at start
	ServerStateFile string     `yaml:"server_state_file"` // optional: kept current for operator reloads
}

// Docker lists the engines containers run on.
type Docker struct {
	Hosts []Host `yaml:"hosts"`
	Pull  bool   `yaml:"pull"` // pull a missing image (needs a reachable registry); default: refuse to start it
}

// Host is one Docker engine.
type Host struct {
	Name          string `yaml:"name"`
	Endpoint      string `yaml:"endpoint"` // unix://, tcp:// (with tls), ssh://
	TLS           *TLS   `yaml:"tls"`
	Address       string `yaml:"address"` // where HAProxy reaches published ports (default 127.0.0.1)
	MaxContainers int    `yaml:"max_containers"`
	Prefer        *bool  `yaml:"prefer"` // false: use only when preferred hosts are full (default true)
}

// IP is the validated address HAProxy reaches the host's containers at.
func (h Host) IP() netip.Addr {
	a, _ := netip.ParseAddr(h.Address)
	return a
}

// Preferred reports whether placement tries this host first.
func (h Host) Preferred() bool { return h.Prefer == nil || *h.Prefer }

// TLS are client certificate paths for a tcp:// engine.
type TLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// API is the HTTP API.
type API struct {
	Listen         string     `yaml:"listen"`          // default 127.0.0.1:9180
	TLS            *ServerTLS `yaml:"tls"`             // optional; required for a non-loopback listen
	InsecureListen bool       `yaml:"insecure_listen"` // allow a non-loopback listen without tls (behind a TLS proxy)
	Tokens         []Token    `yaml:"tokens"`
}

// ServerTLS are the API's certificate and key files, re-read on reload.
type ServerTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Token is a bearer token whose value is read from a file or the environment.
type Token struct {
	Name string `yaml:"name"`
	File string `yaml:"file"`
	Env  string `yaml:"env"`
	Role string `yaml:"role"` // viewer | operator | admin
}

// Service is one HAProxy backend and the containers behind it.
type Service struct {
	Name           string        `yaml:"name"`
	Backend        string        `yaml:"backend"`
	Slots          Slots         `yaml:"slots"`
	Container      Container     `yaml:"container"`
	AllowedImages  []string      `yaml:"allowed_images"` // what a rollout may run (default: container.image's repository, any tag)
	Check          Check         `yaml:"check"`
	MinReplicas    int           `yaml:"min_replicas"`
	MaxReplicas    int           `yaml:"max_replicas"`
	Target         Target        `yaml:"target"`
	MaxScaleUp     int           `yaml:"max_scale_up"` // replicas added per tick at most (default 2)
	Stabilization  Stabilization `yaml:"stabilization"`
	Cooldown       Cooldown      `yaml:"cooldown"`
	DrainTimeout   Duration      `yaml:"drain_timeout"`
	UnhealthyAfter Duration      `yaml:"unhealthy_after"`
	Schedule       *Schedule     `yaml:"schedule"`
	Wake           *Wake         `yaml:"wake"` // scale to zero: see wake.go
}

// Slot modes.
const (
	ModeTemplate = "template"
	ModeDynamic  = "dynamic"
)

// Slots says how the service's servers exist in HAProxy.
type Slots struct {
	Mode   string `yaml:"mode"`   // template (server-template in haproxy.cfg) or dynamic (add server)
	Prefix string `yaml:"prefix"` // server name prefix (default "slot")
}

// Container is what each replica runs.
type Container struct {
	Image   string            `yaml:"image"`
	Port    int               `yaml:"port"` // the port the application listens on inside the container
	Env     map[string]string `yaml:"env"`
	Volumes []string          `yaml:"volumes"` // "src:dst[:ro]"
	Labels  map[string]string `yaml:"labels"`
	Command []string          `yaml:"command"`
	Memory  ByteSize          `yaml:"memory"`
	CPUs    float64           `yaml:"cpus"`
}

// Check is HAProxy's health check of each slot.
type Check struct {
	Path  string   `yaml:"path"`  // HTTP path checked; empty: TCP connect only
	Inter Duration `yaml:"inter"` // default 1s
	Rise  int      `yaml:"rise"`  // default 2
	Fall  int      `yaml:"fall"`  // default 3
}

// Target is what one replica should carry; 0 disables a signal.
type Target struct {
	SessionsPerReplica float64 `yaml:"sessions_per_replica"`
	QueuePerReplica    float64 `yaml:"queue_per_replica"`
	CPUPercent         float64 `yaml:"cpu_percent"`
	Tolerance          float64 `yaml:"tolerance"` // dead band around the target (default 0.1)
}

// Stabilization delays scale-down.
type Stabilization struct {
	ScaleDown Duration `yaml:"scale_down"` // desired must stay lower this long (default 2m)
}

// Cooldown is the minimum time between two changes in one direction.
type Cooldown struct {
	ScaleUp   Duration `yaml:"scale_up"`
	ScaleDown Duration `yaml:"scale_down"`
}

// Schedule is business hours in a time zone.
type Schedule struct {
	Timezone Location `yaml:"timezone"`
	Windows  []Window `yaml:"windows"`
	Outside  Limits   `yaml:"outside"`
}

// Window is a recurring period with its own limits; End before Start means
// it runs overnight into the next day.
type Window struct {
	Days        Days      `yaml:"days"`
	Start       TimeOfDay `yaml:"start"`
	End         TimeOfDay `yaml:"end"`
	MinReplicas int       `yaml:"min_replicas"`
	MaxReplicas int       `yaml:"max_replicas"`
}

// Limits are min/max replicas.
type Limits struct {
	MinReplicas int `yaml:"min_replicas"`
	MaxReplicas int `yaml:"max_replicas"`
}

// Defaults.
const (
	DefaultInterval      = time.Second
	DefaultListen        = "127.0.0.1:9180"
	DefaultStateDir      = "/var/lib/slotscaler"
	DefaultPrefix        = "slot"
	DefaultTolerance     = 0.1
	DefaultMaxScaleUp    = 2
	DefaultStabilization = 2 * time.Minute
	DefaultDrainTimeout  = 60 * time.Second
	DefaultUnhealthy     = 30 * time.Second
	DefaultCheckInter    = time.Second
	DefaultHostAddress   = "127.0.0.1"
)

// FastInter is the check interval of a slot in transition or DOWN (HAProxy's
// fastinter and downinter): a quarter of inter, at least 100ms.
func FastInter(inter time.Duration) time.Duration {
	return min(inter, max(inter/4, 100*time.Millisecond))
}
