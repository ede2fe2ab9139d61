package kernel

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks the kernel to back the memory of a big, fresh slice
// with huge pages (MADV_HUGEPAGE; with transparent huge pages in
// "madvise" mode, the usual default, nothing else gets them). A million
// routes are ~200 MB: touched 4 KB at a time that is 50,000 page faults,
// which cost more than decoding the routes on a virtual machine. Errors
// are ignored: the advice is an optimisation only.
func adviseHuge[T any](s []T) {
	const page = 4096
	var zero T
	size := uintptr(cap(s)) * unsafe.Sizeof(zero)
	if size < 4<<20 {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(s[:cap(s)]))
	start := uintptr(p)
	end := start + size
	aligned := (start + page - 1) &^ (page - 1)
	end &^= page - 1
	if end <= aligned {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, aligned-start)), end-aligned)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
}
