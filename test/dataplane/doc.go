// Package dataplane is moat's data-plane suite: it proves moat's isolation on
// real packets instead of API objects.
//
// It runs a real kube-apiserver and etcd (from bin/, built by `make
// control-plane`), the real `moat serve` (bin/moat) with its CRD, RBAC and
// webhooks, and a real NetworkPolicy enforcer, kube-router's network-policy
// firewall (bin/kube-router, built from the separate module in enforcer/; a
// local test enforcer only, never shipped). The "cluster" is made of Linux
// network namespaces that the suite creates and deletes:
//
//   - node1: the node. It runs the enforcer, routes between the pods
//     (ip_forward=1, a /32 host route per pod) and reaches the API server on
//     the host's loopback through a forwarder of this package. It has no
//     uplink and no default route: only the addresses the suite creates
//     exist anywhere in the topology.
//   - one namespace per pod, with a veth to node1, a /32 address in the pod
//     range, listeners on a few TCP and UDP ports, and a Pod object (nodeName,
//     labels, status.podIP, status.hostIP, phase Running) for the enforcer.
//   - an outside host (an address outside the pod range), a node-local DNS
//     cache (the address given to moat's --dns-ips), a second node (whose
//     address is a Node's InternalIP, for --allow-ingress-from-nodes), and,
//     for the node flood scenario, hosts at three of the 3,000 InternalIPs
//     of a flooding Node (within and beyond --max-node-addresses-per-node).
//
// Each scenario changes API objects as a user would and then checks a verdict
// matrix, source → destination:port/protocol, expected against observed,
// probing each cell (a new connection, 1 s timeout) until it shows the
// expected verdict or a deadline passes. The suite also measures how long the
// data plane takes to follow a change, and runs a negative control: the same
// kind of matrix with no policies enforced must fail.
//
// Run it with `make test-dataplane` (it needs root, ip, iptables and ipset;
// `go test ./...` skips it with one line where they are missing).
package dataplane
