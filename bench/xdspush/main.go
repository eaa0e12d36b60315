// Command xdspush measures the control plane's xDS translation and push: how long it takes
// to translate N Services (cluster, endpoints, virtual hosts) into the ADS server's caches,
// until a connected gateway has ACKed them all, and how long one Service change then takes.
//
//	go run ./bench/xdspush -n 1000,10000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"

	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/gateway"
)

func main() {
	sizes := flag.String("n", "1000,10000", "comma-separated numbers of Services")
	delta := flag.Bool("delta", false, "the gateway uses delta xDS")
	flag.Parse()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "services\tmode\ttranslate+cache\tuntil ACKed\tone change → ACKed\tper service")
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad -n:", err)
			os.Exit(2)
		}
		r, err := run(n, *delta)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		mode := "sotw"
		if *delta {
			mode = "delta"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", n, mode, r.translate.Round(time.Millisecond), r.acked.Round(time.Millisecond),
			r.change.Round(time.Microsecond), (r.acked / time.Duration(n)).Round(time.Microsecond))
	}
	tw.Flush()
}

type result struct{ translate, acked, change time.Duration }

func service(i int) (xds.Cluster, []xds.Endpoint, xds.Route) {
	name := fmt.Sprintf("svc-%05d", i)
	rev := name + "-00001"
	c := xds.Cluster{Namespace: "default", Revision: rev}
	eps := []xds.Endpoint{{Address: "127.0.0.1", Port: uint32(10000 + i%50000)}}
	r := xds.Route{Namespace: "default", Name: name, VirtualHosts: []xds.VirtualHost{{
		Name:     "default/" + name,
		Domains:  []string{name + ".default.localhost"},
		Clusters: []xds.WeightedCluster{{Name: xds.ClusterName("default", rev), Weight: 100}},
	}}}
	return c, eps, r
}

func run(n int, delta bool) (result, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := xds.NewServer(log, xds.Options{ListenerAddress: "127.0.0.1", ListenerPort: 0})
	if err != nil {
		return result{}, err
	}
	g := grpc.NewServer()
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	go g.Serve(lis)
	defer g.Stop()
	defer srv.Close()
	gw, err := gateway.New(gateway.Config{ADSAddress: lis.Addr().String(), NodeID: "bench", NodeCluster: "skiff-gateway",
		AdminAddress: "127.0.0.1:0", Delta: delta, Logger: log, ListenerAddressOverride: "127.0.0.1:0"})
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go gw.Run(ctx)

	start := time.Now()
	for i := range n {
		c, eps, r := service(i)
		if err := srv.SetCluster(c); err != nil {
			return result{}, err
		}
		if _, err := srv.SetEndpoints(xds.ClusterName(c.Namespace, c.Revision), eps); err != nil {
			return result{}, err
		}
		if err := srv.SetRoute(r); err != nil {
			return result{}, err
		}
	}
	res := result{translate: time.Since(start)}
	if err := waitAcked(srv, fmt.Sprintf("svc-%05d", n-1), 10*time.Minute); err != nil {
		return res, err
	}
	res.acked = time.Since(start)

	// One Service changes: a new revision takes its traffic.
	start = time.Now()
	c, eps, r := service(n / 2)
	c.Revision = r.Name + "-00002"
	name := xds.ClusterName("default", c.Revision)
	r.VirtualHosts[0].Clusters = []xds.WeightedCluster{{Name: name, Weight: 100}}
	if err := srv.SetCluster(c); err != nil {
		return res, err
	}
	if _, err := srv.SetEndpoints(name, eps); err != nil {
		return res, err
	}
	if err := srv.SetRoute(r); err != nil {
		return res, err
	}
	if err := waitAcked(srv, r.Name, time.Minute); err != nil {
		return res, err
	}
	res.change = time.Since(start)
	return res, nil
}

func waitAcked(srv *xds.Server, route string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for !srv.RouteAcked("default", route) {
		if time.Now().After(deadline) {
			return fmt.Errorf("route %s not ACKed within %s", route, within)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
