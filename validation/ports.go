package validation

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// supportedProtocols are the protocols NetworkPolicy knows, in the order the
// error message lists them.
var supportedProtocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

// sctpDisabledDetail is the message of the error returned for SCTP ports while
// cfg.SCTPEnabled is false.
const sctpDisabledDetail = "SCTP is turned off because not every network plugin supports it: " +
	"once the cluster's network plugin supports SCTP, turn it on with `moat serve --sctp-enabled` " +
	"(and `moat validate --sctp-enabled`), or use TCP or UDP"

// ValidatePort checks one port entry of an allowlist rule or a NetworkPolicy
// rule (they share the same shape): a protocol NetworkPolicy knows (SCTP only
// with cfg.SCTPEnabled), a port number in 1-65535 or a valid port name, and
// an endPort only with a numeric port, in 1-65535 and not below it. A nil
// protocol means TCP. fldPath is the path of the port entry.
func ValidatePort(protocol *corev1.Protocol, port *intstr.IntOrString, endPort *int32, fldPath *field.Path, cfg Config) field.ErrorList {
	var errs field.ErrorList
	// Child paths are built only for errors: this runs for every port of
	// every rule on each admission request.
	if protocol != nil {
		switch *protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP:
		case corev1.ProtocolSCTP:
			if !cfg.SCTPEnabled {
				errs = append(errs, field.Forbidden(fldPath.Child("protocol"), sctpDisabledDetail))
			}
		default:
			errs = append(errs, field.NotSupported(fldPath.Child("protocol"), *protocol, supportedProtocols))
		}
	}

	if port != nil {
		switch port.Type {
		case intstr.Int:
			if msgs := utilvalidation.IsValidPortNum(int(port.IntVal)); len(msgs) > 0 {
				errs = append(errs, field.Invalid(fldPath.Child("port"), port.IntVal, strings.Join(msgs, "; ")))
			}
		case intstr.String:
			if msgs := utilvalidation.IsValidPortName(port.StrVal); len(msgs) > 0 {
				detail := "a named port " + strings.Join(msgs, "; ")
				if _, err := strconv.Atoi(port.StrVal); err == nil {
					detail = "is a quoted number: write the port number without quotes, or use a port name such as http"
				}
				errs = append(errs, field.Invalid(fldPath.Child("port"), port.StrVal, detail))
			}
		default:
			errs = append(errs, field.Invalid(fldPath.Child("port"), port.String(), "must be a port number or a port name"))
		}
	}

	if endPort != nil {
		switch {
		case port == nil:
			errs = append(errs, field.Required(fldPath.Child("port"), "endPort is set, so port must be set to the first port of the range; or remove endPort"))
		case port.Type == intstr.String:
			errs = append(errs, field.Invalid(fldPath.Child("endPort"), *endPort, "must not be set with a named port: use a port number as the start of the range, or remove endPort"))
		default:
			if msgs := utilvalidation.IsValidPortNum(int(*endPort)); len(msgs) > 0 {
				errs = append(errs, field.Invalid(fldPath.Child("endPort"), *endPort, strings.Join(msgs, "; ")))
			} else if *endPort < port.IntVal {
				errs = append(errs, field.Invalid(fldPath.Child("endPort"), *endPort, fmt.Sprintf("must not be below port %d: the range is port..endPort", port.IntVal)))
			}
		}
	}
	return errs
}
