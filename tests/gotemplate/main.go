// Command gotemplate renders spire-controller-manager SPIFFE ID templates the way the
// controller does (pkg/spireentry: text/template over templateData), for the tests.
//
// stdin:  JSON list of {"template": "...", "data": {TrustDomain, ClusterName, PodMeta, PodSpec, ...}}
// stdout: JSON list of {"id": "..."} or {"error": "..."}, one per case.
//
// The data types mirror the fields of the Kubernetes types the controller passes
// (metav1.ObjectMeta, corev1.PodSpec, corev1.NodeSpec) that a template can reach; field
// names are the Go names, as text/template sees them.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"text/template"
)

type ObjectMeta struct {
	Name        string
	Namespace   string
	UID         string
	Labels      map[string]string
	Annotations map[string]string
}

type PodSpec struct {
	ServiceAccountName string
	NodeName           string
	Hostname           string
	Subdomain          string
}

type NodeSpec struct {
	PodCIDR    string
	ProviderID string
}

// templateData has exactly the fields of spire-controller-manager's spireentry.templateData.
type templateData struct {
	TrustDomain   string
	ClusterName   string
	ClusterDomain string
	PodMeta       *ObjectMeta
	PodSpec       *PodSpec
	NodeMeta      *ObjectMeta
	NodeSpec      *NodeSpec
}

type request struct {
	Template string       `json:"template"`
	Data     templateData `json:"data"`
}

type response struct {
	ID    string `json:"id,omitempty"`
	Error string `json:"error,omitempty"`
}

func render(r request) response {
	// The controller names its template "spiffeIDTemplate" and parses it with no funcs.
	tmpl, err := template.New("spiffeIDTemplate").Parse(r.Template)
	if err != nil {
		return response{Error: fmt.Sprintf("invalid SPIFFEID template: %v", err)}
	}
	if r.Data.PodMeta == nil {
		r.Data.PodMeta = &ObjectMeta{}
	}
	if r.Data.PodSpec == nil {
		r.Data.PodSpec = &PodSpec{}
	}
	if r.Data.NodeMeta == nil {
		r.Data.NodeMeta = &ObjectMeta{}
	}
	if r.Data.NodeSpec == nil {
		r.Data.NodeSpec = &NodeSpec{}
	}
	buf := new(bytes.Buffer)
	if err := tmpl.Execute(buf, &r.Data); err != nil {
		return response{Error: fmt.Sprintf("failed to execute template: %v", err)}
	}
	return response{ID: buf.String()}
}

func main() {
	var reqs []request
	if err := json.NewDecoder(os.Stdin).Decode(&reqs); err != nil {
		fmt.Fprintln(os.Stderr, "gotemplate: bad input:", err)
		os.Exit(2)
	}
	out := make([]response, len(reqs))
	for i, r := range reqs {
		out[i] = render(r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "gotemplate:", err)
		os.Exit(2)
	}
}
