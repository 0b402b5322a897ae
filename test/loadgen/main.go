// Command loadgen sends AdmissionReview requests over HTTPS to a webhook
// server on the loopback interface and reports throughput and latency
// percentiles. It is moat's admission load generator (`make bench`).
//
// It speaks TLS 1.3 only, over HTTP/1.1 with keep-alive: each of
// -concurrency workers holds one connection and reuses it. Two modes:
//
//   - closed loop (-rate 0): every worker sends its next request as soon as
//     the previous answer arrives, for -duration or until -count requests;
//     this measures the highest throughput the server sustains.
//   - open loop (-rate R): requests are scheduled every 1/R seconds,
//     whatever the server does, and latency is measured from the scheduled
//     time, so a server that falls behind is charged for the queueing it
//     causes (no coordinated omission).
//
// Every answer must be HTTP 200 with an AdmissionReview whose response
// carries the request's uid and allowed: true; anything else counts as an
// error. With -json the result is printed as one JSON object.
//
// Usage:
//
//	loadgen -url https://127.0.0.1:9443/validate-... -ca ca.crt -body review.json \
//	        [-concurrency 8] [-rate 0] [-duration 5s] [-count 0] [-json]
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// Result is what one load run measured.
type Result struct {
	// Mode is "closed" or "open".
	Mode string `json:"mode"`
	// Concurrency is the number of workers (connections).
	Concurrency int `json:"concurrency"`
	// TargetRate is the requested rate in open-loop mode (0 in closed loop).
	TargetRate float64 `json:"targetRate"`
	// Requests and Errors count the answers received and the bad ones.
	Requests int `json:"requests"`
	Errors   int `json:"errors"`
	// FirstError describes the first bad answer, if any.
	FirstError string `json:"firstError,omitempty"`
	// Seconds is the wall time of the run.
	Seconds float64 `json:"seconds"`
	// Throughput is good answers per second.
	Throughput float64 `json:"throughput"`
	// P50, P90, P99 and Max are latencies in milliseconds.
	P50 float64 `json:"p50ms"`
	P90 float64 `json:"p90ms"`
	P99 float64 `json:"p99ms"`
	Max float64 `json:"maxms"`
}

type options struct {
	url         string
	caFile      string
	bodyFile    string
	concurrency int
	rate        float64
	duration    time.Duration
	count       int
	warmup      int
	jsonOut     bool
}

func main() {
	o := options{}
	flag.StringVar(&o.url, "url", "", "https URL of the webhook endpoint on 127.0.0.1, ::1 or localhost")
	flag.StringVar(&o.caFile, "ca", "", "PEM file of the CA that signed the server's certificate")
	flag.StringVar(&o.bodyFile, "body", "", "file holding the AdmissionReview JSON to send")
	flag.IntVar(&o.concurrency, "concurrency", 8, "workers, each with its own keep-alive connection")
	flag.Float64Var(&o.rate, "rate", 0, "requests per second (open loop); 0 sends as fast as answers come back (closed loop)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long to send (at most 10m)")
	flag.IntVar(&o.count, "count", 0, "stop after this many requests (0: no limit besides -duration)")
	flag.IntVar(&o.warmup, "warmup", 200, "requests sent (and not measured) first, to open connections and warm the server")
	flag.BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	flag.Parse()

	res, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	if o.jsonOut {
		_ = json.NewEncoder(os.Stdout).Encode(res)
	} else {
		fmt.Printf("%s loop, %d connections: %d requests (%d errors) in %.2fs: %.0f req/s, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
			res.Mode, res.Concurrency, res.Requests, res.Errors, res.Seconds, res.Throughput, res.P50, res.P90, res.P99, res.Max)
	}
	if res.Errors > 0 {
		fmt.Fprintln(os.Stderr, "loadgen: first error:", res.FirstError)
		os.Exit(1)
	}
}

func (o options) check() error {
	u, err := url.Parse(o.url)
	if err != nil || u.Scheme != "https" {
		return fmt.Errorf("-url %q: want an https:// URL", o.url)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); !(host == "localhost" || (ip != nil && ip.IsLoopback())) {
		return fmt.Errorf("-url %q: loadgen only targets the loopback interface (127.0.0.1, ::1, localhost)", o.url)
	}
	switch {
	case o.concurrency < 1 || o.concurrency > 1024:
		return fmt.Errorf("-concurrency %d: use 1 to 1024", o.concurrency)
	case o.rate < 0 || o.rate > 1e6:
		return fmt.Errorf("-rate %v: use 0 (closed loop) up to 1e6", o.rate)
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return fmt.Errorf("-duration %v: use more than 0 and at most 10m", o.duration)
	case o.count < 0 || o.warmup < 0:
		return errors.New("-count and -warmup must not be negative")
	case o.caFile == "" || o.bodyFile == "":
		return errors.New("-ca and -body are required")
	}
	return nil
}

func newClient(o options) (*http.Client, error) {
	caPEM, err := os.ReadFile(o.caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", o.caFile)
	}
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:    pool,
			MinVersion: tls.VersionTLS13,
			MaxVersion: tls.VersionTLS13,
			NextProtos: []string{"http/1.1"},
		},
		ForceAttemptHTTP2:   false,
		MaxIdleConns:        o.concurrency,
		MaxIdleConnsPerHost: o.concurrency,
		MaxConnsPerHost:     o.concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		// The API server sends the request in one write; so do we.
		WriteBufferSize: 64 << 10,
	}
	return &http.Client{Transport: transport, Timeout: 10 * time.Second}, nil
}

// sender sends the body and checks the answer.
type sender struct {
	client *http.Client
	url    string
	body   []byte
	uid    string
}

func (s *sender) send(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(s.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, data)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil {
		return fmt.Errorf("answer is not an AdmissionReview: %v: %.200s", err, data)
	}
	if review.Response == nil || string(review.Response.UID) != s.uid || !review.Response.Allowed {
		return fmt.Errorf("answer does not allow request %s: %.300s", s.uid, data)
	}
	return nil
}

func run(o options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	body, err := os.ReadFile(o.bodyFile)
	if err != nil {
		return nil, err
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		return nil, fmt.Errorf("%s is not an AdmissionReview request (%v)", o.bodyFile, err)
	}
	client, err := newClient(o)
	if err != nil {
		return nil, err
	}
	s := &sender{client: client, url: o.url, body: body, uid: string(review.Request.UID)}

	// Warm up: open every connection and let the server reach steady state.
	if err := warmup(s, o); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, 1<<16)
		errCount  int
		firstErr  string
		sent      atomic.Int64
	)
	record := func(d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return // cut off by the end of the run, not the server's fault
			}
			errCount++
			if firstErr == "" {
				firstErr = err.Error()
			}
			return
		}
		latencies = append(latencies, d)
	}
	// take reserves the next request number; false once -count is reached.
	take := func() bool {
		n := sent.Add(1)
		return o.count == 0 || n <= int64(o.count)
	}

	start := time.Now()
	var wg sync.WaitGroup
	res := &Result{Concurrency: o.concurrency, TargetRate: o.rate}
	if o.rate == 0 {
		res.Mode = "closed"
		for range o.concurrency {
			wg.Go(func() {
				for ctx.Err() == nil && take() {
					t := time.Now()
					err := s.send(ctx)
					record(time.Since(t), err)
				}
			})
		}
	} else {
		res.Mode = "open"
		// A dispatcher hands out scheduled start times; workers send at
		// (or as soon as possible after) them. Latency counts from the
		// scheduled time.
		schedule := make(chan time.Time, o.concurrency)
		wg.Go(func() {
			defer close(schedule)
			interval := time.Duration(float64(time.Second) / o.rate)
			for i := 0; ctx.Err() == nil && take(); i++ {
				at := start.Add(time.Duration(i) * interval)
				if d := time.Until(at); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
				select {
				case schedule <- at:
				case <-ctx.Done():
					return
				}
			}
		})
		for range o.concurrency {
			wg.Go(func() {
				for at := range schedule {
					err := s.send(ctx)
					record(time.Since(at), err)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)

	res.Requests = len(latencies) + errCount
	res.Errors = errCount
	res.FirstError = firstErr
	res.Seconds = elapsed.Seconds()
	res.Throughput = float64(len(latencies)) / elapsed.Seconds()
	if len(latencies) > 0 {
		slices.Sort(latencies)
		ms := func(q float64) float64 {
			i := int(q*float64(len(latencies))+0.5) - 1
			i = min(max(i, 0), len(latencies)-1)
			return float64(latencies[i].Microseconds()) / 1000
		}
		res.P50, res.P90, res.P99 = ms(0.50), ms(0.90), ms(0.99)
		res.Max = float64(latencies[len(latencies)-1].Microseconds()) / 1000
	}
	return res, nil
}

// warmup sends o.warmup requests over o.concurrency connections.
func warmup(s *sender, o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		left  atomic.Int64
		first atomic.Pointer[error]
		wg    sync.WaitGroup
	)
	left.Store(int64(max(o.warmup, o.concurrency)))
	for range o.concurrency {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := s.send(ctx); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		return *err
	}
	return nil
}
