// Package fakeengine is an in-memory Docker host for unit tests of the
// control loop and the API: containers "run" on a port as soon as they are
// started, and a test can make them sick, fail starts or fail listing.
package fakeengine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slotscaler/slotscaler/scaler"
)

var _ scaler.Engine = (*Engine)(nil)

// Engine is one fake host.
type Engine struct {
	Mu         sync.Mutex // held while a test changes the fields below
	Name       string
	next       int
	ByID       map[string]*scaler.Container
	Sick       map[int]bool    // ports whose health check fails
	SickImages map[string]bool // images whose containers never pass a check
	StartErr   error
	ListErr    error
	Starts     int
	CPUShare   float64 // CPU each container uses, in CPUs
	cpuCalls   map[string]int
}

// New returns an empty host whose container ports count up from firstPort.
func New(name string, firstPort int) *Engine {
	return &Engine{Name: name, next: firstPort, ByID: map[string]*scaler.Container{}, Sick: map[int]bool{}, SickImages: map[string]bool{}, cpuCalls: map[string]int{}}
}

// Containers lists every container.
func (e *Engine) Containers(context.Context) ([]scaler.Container, error) {
	e.Mu.Lock()
	defer e.Mu.Unlock()
	if e.ListErr != nil {
		return nil, e.ListErr
	}
	var out []scaler.Container
	for _, c := range e.ByID {
		out = append(out, *c)
	}
	return out, nil
}

// Start "runs" a container at once, or fails with StartErr.
func (e *Engine) Start(_ context.Context, s scaler.Spec) (scaler.Container, error) {
	e.Mu.Lock()
	defer e.Mu.Unlock()
	if e.StartErr != nil {
		return scaler.Container{}, e.StartErr
	}
	e.Starts++
	e.next++
	c := scaler.Container{ID: fmt.Sprintf("%s-%d", e.Name, e.next), Name: s.Name, Service: s.Service, Slot: s.Slot, Host: e.Name,
		Generation: s.Generation, Image: s.Image, Running: true, Port: e.next}
	e.ByID[c.ID] = &c
	return c, nil
}

// Remove deletes a container.
func (e *Engine) Remove(_ context.Context, id string, _ time.Duration) error {
	e.Mu.Lock()
	defer e.Mu.Unlock()
	delete(e.ByID, id)
	return nil
}

// CPU reports CPUShare of one CPU per second of system time.
func (e *Engine) CPU(_ context.Context, id string) (scaler.CPUSample, error) {
	e.Mu.Lock()
	defer e.Mu.Unlock()
	if e.CPUShare == 0 {
		return scaler.CPUSample{}, errors.New("no cpu in the fake")
	}
	e.cpuCalls[id]++
	n := uint64(e.cpuCalls[id])
	return scaler.CPUSample{ContainerNS: n * uint64(e.CPUShare*1e9), SystemNS: n * 1e9, OnlineCPUs: 1}, nil
}

// RunningOn reports whether a healthy container listens on port: the
// checker of a runtimeapi.Fake.
func (e *Engine) RunningOn(port int) bool {
	e.Mu.Lock()
	defer e.Mu.Unlock()
	for _, c := range e.ByID {
		if c.Port == port && c.Running && !e.Sick[port] && !e.SickImages[c.Image] {
			return true
		}
	}
	return false
}

// Count is the number of containers, running or not.
func (e *Engine) Count() int {
	e.Mu.Lock()
	defer e.Mu.Unlock()
	return len(e.ByID)
}

// Images counts the containers per image.
func (e *Engine) Images() map[string]int {
	e.Mu.Lock()
	defer e.Mu.Unlock()
	out := map[string]int{}
	for _, c := range e.ByID {
		out[c.Image]++
	}
	return out
}
