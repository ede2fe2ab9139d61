# tunroute's build and install. One install path everywhere: the binary in
# $(SBINDIR) (the systemd units and the hook examples name
# /usr/local/sbin/tunroute), the units in $(UNITDIR), iproute2's name for
# tunroute's route protocol in /etc/iproute2/rt_protos.d.
PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
UNITDIR ?= /etc/systemd/system
PROTODIR ?= /etc/iproute2/rt_protos.d
DESTDIR ?=

.PHONY: build install uninstall test demo

build:
	go build -trimpath -o tunroute ./cmd/tunroute

install: build
	install -D -m 0755 tunroute $(DESTDIR)$(SBINDIR)/tunroute
	install -D -m 0644 systemd/tunroute.service $(DESTDIR)$(UNITDIR)/tunroute.service
	install -D -m 0644 systemd/tunroute-domain@.service $(DESTDIR)$(UNITDIR)/tunroute-domain@.service
	install -d $(DESTDIR)$(PROTODIR)
	echo "116 tunroute" > $(DESTDIR)$(PROTODIR)/tunroute.conf
	install -d -m 0755 $(DESTDIR)/etc/tunroute

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/tunroute $(DESTDIR)$(UNITDIR)/tunroute.service \
		$(DESTDIR)$(UNITDIR)/tunroute-domain@.service $(DESTDIR)$(PROTODIR)/tunroute.conf

test:
	bash scripts/test.sh

demo:
	go run ./cmd/tunroute lab demo
