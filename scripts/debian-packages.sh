# Sourced by the test scripts: install_packages PKG... makes sure the
# Debian packages are installed (apt-get as root). It returns 1, saying
# what is missing, when they are not and cannot be installed.
install_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing: ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
		return
	fi
	echo "missing Debian packages: ${missing[*]} (run as root to have them installed)" >&2
	return 1
}
