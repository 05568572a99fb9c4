#!/bin/sh
# Prints COUNT one-time knock sequences (default 20), one per line, each
# LENGTH (default 4) random TCP ports from 1024-65535 with no port twice in
# a row, in the format One_Time_Sequences reads. Randomness: /dev/urandom.
#
#   gen-one-time-sequences.sh 100 > /etc/knockd/ssh.seq && chmod 600 /etc/knockd/ssh.seq
set -eu
count=${1:-20}
length=${2:-4}
case "$count$length" in
*[!0-9]* | "") echo "usage: $0 [COUNT] [LENGTH]" >&2; exit 64 ;;
esac
if [ "$length" -lt 1 ] || [ "$length" -gt 32 ]; then
	echo "$0: LENGTH must be 1 to 32 (knockd's limit)" >&2
	exit 64
fi
od -An -v -tu2 -N $((count * length * 2)) /dev/urandom | tr -s ' \n' '\n\n' | grep . |
	awk -v len="$length" '{
		port = 1024 + $1 % 64512
		if (port == prev) port = (port == 65535) ? 1024 : port + 1
		prev = port
		line = (n % len == 0) ? port : line "," port
		n++
		if (n % len == 0) { print line; prev = "" }
	}'
