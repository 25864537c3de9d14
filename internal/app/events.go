package app

import (
	"context"
	"log/slog"
	"sync"

	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/pipeline"
)

// EventHub records the pipelines' events in the store and hands each, as
// stored, to the live subscribers of its pipeline (the API's event stream).
type EventHub struct {
	log   *slog.Logger
	store store.EventLog

	mu   sync.Mutex // serializes appends: a pipeline's sequence numbers
	subs map[*subscriber]struct{}
}

type subscriber struct {
	pipeline string
	ch       chan pipeline.Event
}

// subscriberBuffer is how many events a subscriber may fall behind by before
// its stream is closed (it reconnects and reads the rest from the store).
const subscriberBuffer = 256

// NewEventHub returns a hub over the store's event log.
func NewEventHub(st store.EventLog, log *slog.Logger) *EventHub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &EventHub{log: log.With("component", "events"), store: st, subs: map[*subscriber]struct{}{}}
}

// RecordEvent implements pipeline.EventRecorder.
func (h *EventHub) RecordEvent(ctx context.Context, e pipeline.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	stored, err := h.store.AppendEvent(ctx, e)
	if err != nil {
		h.log.Warn("an event was not recorded", "pipeline", e.Pipeline, "kind", e.Kind, "error", err)
		return
	}
	for s := range h.subs {
		if s.pipeline != "" && s.pipeline != e.Pipeline {
			continue
		}
		select {
		case s.ch <- stored:
		default: // too far behind: end its stream; it resumes from the store
			close(s.ch)
			delete(h.subs, s)
		}
	}
}

// Subscribe returns the events of a pipeline (every pipeline's for name "")
// recorded from now on, until cancel is called or the channel is closed (the
// subscriber fell behind).
func (h *EventHub) Subscribe(name string) (<-chan pipeline.Event, func()) {
	s := &subscriber{pipeline: name, ch: make(chan pipeline.Event, subscriberBuffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s.ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[s]; ok {
			delete(h.subs, s)
			close(s.ch)
		}
	}
}

// Events returns a pipeline's events after seq after, oldest first.
func (a *App) Events(ctx context.Context, name string, after int64, limit int) ([]pipeline.Event, error) {
	if _, err := a.Store.GetPipeline(ctx, name); err != nil {
		return nil, err
	}
	if a.Hub == nil {
		return nil, nil
	}
	return store.Events(a.Store).ListEvents(ctx, name, after, limit)
}

// SubscribeEvents returns the events of a pipeline recorded from now on (see
// EventHub.Subscribe).
func (a *App) SubscribeEvents(ctx context.Context, name string) (<-chan pipeline.Event, func(), error) {
	if _, err := a.Store.GetPipeline(ctx, name); err != nil {
		return nil, nil, err
	}
	if a.Hub == nil { // no event log: a stream that stays open and says nothing
		ch := make(chan pipeline.Event)
		var once sync.Once
		return ch, func() { once.Do(func() { close(ch) }) }, nil
	}
	ch, cancel := a.Hub.Subscribe(name)
	return ch, cancel, nil
}

// SubscribeAllEvents returns every pipeline's events recorded from now on
// (see EventHub.Subscribe): what the pipeline list follows.
func (a *App) SubscribeAllEvents(context.Context) (<-chan pipeline.Event, func(), error) {
	if a.Hub == nil {
		ch := make(chan pipeline.Event)
		var once sync.Once
		return ch, func() { once.Do(func() { close(ch) }) }, nil
	}
	ch, cancel := a.Hub.Subscribe("")
	return ch, cancel, nil
}
