// Package config is slotscaler.yaml: the model, strict decoding (unknown
// keys rejected, every error named by its YAML path), defaults and
// validation. Durations, time zones, sizes and day ranges are parsed once
// here, so the control loop only sees typed values. It must not do I/O
// beyond reading the file it is given.
package config
