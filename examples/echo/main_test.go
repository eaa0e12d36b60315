package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
)

func TestEchoAnswersWithRequestAndRevision(t *testing.T) {
	h := &handler{revision: "hello-00001", service: "hello", target: "Go"}
	srv := httptest.NewServer(h)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/some/path?status=201", nil)
	req.Host = "hello.default.example.com"
	req.Header.Set("X-Test", "yes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got reply
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 201 || resp.Header.Get("X-Revision") != "hello-00001" {
		t.Errorf("status %d, X-Revision %q; want 201, hello-00001", resp.StatusCode, resp.Header.Get("X-Revision"))
	}
	want := reply{Revision: "hello-00001", Service: "hello", Host: "hello.default.example.com", Method: "POST",
		Path: "/some/path", InFlight: 1, MaxInFlight: 1, Message: "Hello Go!"}
	if got.Headers["X-Test"] != "yes" {
		t.Errorf("headers = %v, want X-Test: yes", got.Headers)
	}
	got.Headers = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reply = %+v, want %+v", got, want)
	}
}

func TestEchoTracksConcurrency(t *testing.T) {
	h := &handler{revision: "r"}
	srv := httptest.NewServer(h)
	defer srv.Close()

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/?sleep=300")
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	var got reply
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got.MaxInFlight != 3 || got.InFlight != 1 {
		t.Errorf("inFlight %d maxInFlight %d, want 1 and 3", got.InFlight, got.MaxInFlight)
	}
	resp, err = http.Get(srv.URL + "/?reset=1")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got.MaxInFlight != 1 {
		t.Errorf("after reset maxInFlight = %d, want 1", got.MaxInFlight)
	}
	resp, err = http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}
