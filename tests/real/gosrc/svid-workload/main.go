// svid-workload: the node tier's workload image.  It asks the SPIFFE Workload
// API (SPIFFE_ENDPOINT_SOCKET, the socket the SPIFFE CSI volume provides) for
// its X.509-SVIDs, and for a JWT-SVID when JWT_AUDIENCE is set, and prints
// each answer as one JSON line on stdout, so a test reads them with
// `kubectl logs`.  It never exits on its own: a pod without an identity
// stays Running and keeps printing the Workload API's refusal.
package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

type report struct {
	Time      string   `json:"time"`
	Error     string   `json:"error,omitempty"`
	SpiffeIDs []string `json:"spiffeIDs,omitempty"`
	// PEM chain of the first SVID, leaf first
	Chain  string `json:"chain,omitempty"`
	Bundle string `json:"bundle,omitempty"`
	// the other trust domains' X.509 authorities the Workload API delivered (federation):
	// trust domain -> PEM
	Federated map[string]string `json:"federated,omitempty"`
	JWT       string            `json:"jwt,omitempty"`
	JWTError  string            `json:"jwtError,omitempty"`
}

func emit(r report) {
	r.Time = time.Now().UTC().Format(time.RFC3339)
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

func fetch(ctx context.Context, client *workloadapi.Client) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	x, err := client.FetchX509Context(c)
	if err != nil {
		emit(report{Error: err.Error()})
		return
	}
	var r report
	for _, s := range x.SVIDs {
		r.SpiffeIDs = append(r.SpiffeIDs, s.ID.String())
	}
	if len(x.SVIDs) > 0 {
		for _, cert := range x.SVIDs[0].Certificates {
			r.Chain += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
		}
		own := x.SVIDs[0].ID.TrustDomain()
		for _, b := range x.Bundles.Bundles() {
			var text string
			for _, cert := range b.X509Authorities() {
				text += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
			}
			if b.TrustDomain() == own {
				r.Bundle = text
			} else {
				if r.Federated == nil {
					r.Federated = map[string]string{}
				}
				r.Federated[b.TrustDomain().Name()] = text
			}
		}
	}
	if aud := os.Getenv("JWT_AUDIENCE"); aud != "" {
		j, err := client.FetchJWTSVID(c, jwtsvid.Params{Audience: aud})
		if err != nil {
			r.JWTError = err.Error()
		} else {
			r.JWT = j.Marshal()
		}
	}
	emit(r)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	client, err := workloadapi.New(ctx)
	if err != nil {
		emit(report{Error: err.Error()})
		os.Exit(1)
	}
	defer client.Close()
	for {
		fetch(ctx, client)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}
