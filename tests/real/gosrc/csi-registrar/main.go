// csi-registrar: registers a CSI node plugin with the kubelet, the job of
// kubernetes-csi/node-driver-registrar, whose module the Go module proxy
// reachable from these machines does not serve (every version: 403).  It
// takes the flags the rendered spire-agent package passes to that image
// (-csi-address, -kubelet-registration-path, -health-port), so the rendered
// container arguments run unchanged.
//
// It serves the kubelet's plugin-registration API (k8s.io/kubelet
// pluginregistration/v1) on /registration/<plugin name>-reg.sock; the plugin
// name is asked from the CSI driver itself (Identity.GetPluginInfo).
// /healthz answers 200 once the kubelet reported the registration succeeded.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type registrar struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string
	registered     atomic.Bool
}

func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: r.name, Endpoint: r.endpoint,
		SupportedVersions: []string{"1.0.0"}}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	log.Printf("kubelet registration status: registered=%v error=%q", s.PluginRegistered, s.Error)
	r.registered.Store(s.PluginRegistered)
	return &registerapi.RegistrationStatusResponse{}, nil
}

func pluginName(ctx context.Context, csiAddress string) (string, error) {
	conn, err := grpc.NewClient("unix://"+csiAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	for {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := csi.NewIdentityClient(conn).GetPluginInfo(c, &csi.GetPluginInfoRequest{})
		cancel()
		if err == nil {
			return info.GetName(), nil
		}
		log.Printf("waiting for the CSI driver at %s: %v", csiAddress, err)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func main() {
	csiAddress := flag.String("csi-address", "/run/csi/socket", "the CSI driver's socket in this container")
	kubeletPath := flag.String("kubelet-registration-path", "", "the CSI driver's socket on the node, as the kubelet dials it")
	healthPort := flag.Int("health-port", 0, "serve /healthz on this port (0: off)")
	regDir := flag.String("plugin-registration-path", "/registration", "the kubelet's plugin registration directory in this container")
	flag.Parse()
	if *kubeletPath == "" {
		log.Fatal("-kubelet-registration-path is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	name, err := pluginName(ctx, *csiAddress)
	if err != nil {
		log.Fatalf("CSI driver name: %v", err)
	}
	r := &registrar{name: name, endpoint: *kubeletPath}
	sock := filepath.Join(*regDir, fmt.Sprintf("%s-reg.sock", name))
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatalf("listen %s: %v", sock, err)
	}
	defer os.Remove(sock)
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, r)
	go func() { _ = srv.Serve(l) }()
	log.Printf("registering CSI plugin %s (endpoint %s) through %s", name, *kubeletPath, sock)

	if *healthPort != 0 {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			if !r.registered.Load() {
				http.Error(w, "not registered with the kubelet", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		// loopback only: the node tier runs this pod on the host network (a
		// registrar in a pod network would listen on the pod's address)
		hs := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", *healthPort), Handler: mux}
		go func() { _ = hs.ListenAndServe() }()
	}
	<-ctx.Done()
	srv.GracefulStop()
}
