package fib

// errno is the outcome of a lookup step, named after the kernel's errno.
type errno uint8

const (
	errOK          errno = iota
	errAGAIN             // internal: no match in this table, continue the rule walk
	errNETUNREACH        // ENETUNREACH
	errHOSTUNREACH       // EHOSTUNREACH
	errACCES             // EACCES
	errINVAL             // EINVAL
	errNODEV             // ENODEV
	errPROTO             // EOPNOTSUPP with the extack "Unsupported ip proto"
	errNoDevice          // iproute2 client error: unknown device name
	errMSGSIZE           // EMSGSIZE
	// errMissLeaf: internal: a route through a nexthop object suited no
	// nexthop; the prefixes of the same trie leaf are passed over.
	errMissLeaf
	// errMissing: internal: the lookup reached a table a partial FIB
	// does not hold (NewPartial); its answer is not the kernel's.
	errMissing
)

// Message returns the text iproute2 prints for the error (after
// "RTNETLINK answers: " for kernel errors).
func (e errno) Message() string {
	switch e {
	case errOK:
		return ""
	case errAGAIN:
		return "Resource temporarily unavailable"
	case errNETUNREACH:
		return "Network is unreachable"
	case errHOSTUNREACH:
		return "No route to host"
	case errACCES:
		return "Permission denied"
	case errINVAL:
		return "Invalid argument"
	case errNODEV:
		return "No such device"
	case errPROTO:
		return "Unsupported ip proto"
	case errNoDevice:
		return "Cannot find device"
	case errMSGSIZE:
		return "Message too long"
	}
	return "unknown error"
}

// Name is the errno's symbolic name.
func (e errno) Name() string {
	switch e {
	case errAGAIN:
		return "EAGAIN"
	case errNETUNREACH:
		return "ENETUNREACH"
	case errHOSTUNREACH:
		return "EHOSTUNREACH"
	case errACCES:
		return "EACCES"
	case errINVAL:
		return "EINVAL"
	case errNODEV:
		return "ENODEV"
	case errPROTO:
		return "EOPNOTSUPP"
	case errNoDevice:
		return "ENODEV"
	case errMSGSIZE:
		return "EMSGSIZE"
	}
	return ""
}

// routeTypeErr is fib_props[type].error / fib6_prop[type].
func routeTypeErr(t uint8) errno {
	switch t {
	case 6: // blackhole
		return errINVAL
	case 7: // unreachable
		return errHOSTUNREACH
	case 8: // prohibit
		return errACCES
	case 9: // throw
		return errAGAIN
	case 10, 11: // nat, xresolve
		return errINVAL
	}
	return errOK
}
