package headless

import (
	"github.com/miekg/dns"
)

// negativeReason is why a name under a headless service the plugin knows has
// no records, which extended_errors tells the client.
type negativeReason uint8

const (
	noReason negativeReason = iota
	// endpointNotReady: the name is of an endpoint that is not ready, or
	// terminating.
	endpointNotReady
	// noReadyEndpoint: the service has no ready endpoint (in the zone
	// asked for, for a zonal name).
	noReadyEndpoint
	// namespaceHidden: namespace_labels does not select the namespace.
	namespaceHidden
	// noSuchPort: the service has no port of that name and protocol.
	noSuchPort
	// noSuchEndpoint: no endpoint of the service has that label.
	noSuchEndpoint
	// noRecordOfType: the name exists, but has no record of the type asked.
	noRecordOfType
	// notAName: the name is not one the Kubernetes DNS specification
	// defines.
	notAName
	negativeReasons // the number of reasons
)

// String returns the text of the Extended DNS Error.
func (r negativeReason) String() string {
	return [...]string{
		noReason:         "",
		endpointNotReady: "endpoint not ready",
		noReadyEndpoint:  "no ready endpoint",
		namespaceHidden:  "namespace not exposed",
		noSuchPort:       "no such port",
		noSuchEndpoint:   "no such endpoint",
		noRecordOfType:   "no record of this type",
		notAName:         "not a Kubernetes DNS name",
	}[r]
}

// label returns the value of the reason label of the negative-answer
// counter.
func (r negativeReason) label() string {
	return [...]string{
		noReason:         "",
		endpointNotReady: "endpoint_not_ready",
		noReadyEndpoint:  "no_ready_endpoint",
		namespaceHidden:  "namespace_not_exposed",
		noSuchPort:       "no_such_port",
		noSuchEndpoint:   "no_such_endpoint",
		noRecordOfType:   "no_record_of_type",
		notAName:         "not_a_name",
	}[r]
}

// whyNoName returns why the selection sel of the name n, parsed with err,
// selects no endpoint.
func whyNoName(sel *selection, n queryName, err error) negativeReason {
	switch {
	case err != nil:
		return notAName
	case sel.host != "":
		for _, s := range sel.slices {
			for _, e := range s.endpoints {
				if equalFoldASCII(e.host, sel.host) {
					return endpointNotReady // kept, and not served
				}
			}
		}
		return noSuchEndpoint
	case n.port != "" || n.protocol != "":
		all := selection{view: sel.view, slices: sel.view.slices}
		if all.selectsAny() {
			return noSuchPort
		}
	}
	return noReadyEndpoint
}

// whyNoData returns why the selection sel, which exists, has no record of
// the type asked.
func whyNoData(sel *selection) negativeReason {
	if !sel.selectsAny() {
		return noReadyEndpoint // a zonal name with no endpoint in its zone
	}
	return noRecordOfType
}

// explain adds to m, the answer to r, an Extended DNS Error (RFC 8914) that
// gives why, and counts it. Without EDNS in r, m cannot carry it.
func explain(m, r *dns.Msg, why negativeReason) {
	negativeAnswers[why].Inc()
	o := r.IsEdns0()
	if o == nil {
		return
	}
	m.SetEdns0(o.UDPSize(), o.Do())
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeOther, ExtraText: why.String()})
}
