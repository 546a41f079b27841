#!/usr/bin/env bash
# usage: benches/shop_roles.sh <shop binary> <rate> <seconds> <check-timeout> <label>
# The shop as separate --role processes on `shop broker`, PostgreSQL (fresh database
# shop_bench), as docker-compose.yml splits it; `shop load` against it. Reports CPU per
# process and peak RSS per process.
set -u
BIN=$1; RATE=$2; SECS=$3; CHECK=$4; LABEL=$5
OUT=${SHOP_ROLES_OUT:-target/shop-roles}/$LABEL; rm -rf $OUT; mkdir -p $OUT
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS shop_bench" -c "CREATE DATABASE shop_bench" >/dev/null
DB=postgres://postgres@127.0.0.1:5432/shop_bench
SECRET=bench-secret
$BIN --data-dir $OUT/broker broker --listen 127.0.0.1:19092 > $OUT/broker.log 2>&1 &
echo "broker $!" > $OUT/pids
sleep 2
common=(--bootstrap-servers 127.0.0.1:19092 --database-url $DB --jwt-secret $SECRET --metrics-addr 127.0.0.1:0)
ports() { echo --order-api ${1:-127.0.0.1:0} --inventory-api ${2:-127.0.0.1:0} --dashboard ${3:-127.0.0.1:0} --topic-view ${4:-127.0.0.1:0}; }
start() { name=$1; shift; $BIN "${common[@]}" --data-dir $OUT/$name "$@" > $OUT/$name.log 2>&1 & echo "$name $!" >> $OUT/pids; }
start order --role order --role user $(ports 127.0.0.1:8081)
# The first process migrates the schema; the others start once it serves.
for i in $(seq 1 60); do curl -sf http://127.0.0.1:8081/health >/dev/null && break; sleep 1; done
start inventory --role inventory $(ports "" 127.0.0.1:8082)
start payment --role payment $(ports)
start shipping --role shipping $(ports)
start notification --role notification $(ports)
start audit --role audit $(ports)
start streams --role analytics --role inventory-monitor --role fraud $(ports)
start dashboard --role dashboard --role topic-view $(ports "" "" 127.0.0.1:3000 127.0.0.1:8080)
start simulator --role simulator --simulator-target http://127.0.0.1:8081 $(ports)
for i in $(seq 1 120); do curl -sf http://127.0.0.1:8081/health >/dev/null && curl -sf http://127.0.0.1:8080/ >/dev/null && break; sleep 1; done
sleep 25
cpu() { while read n p; do read -r u s < <(awk '{print $14, $15}' /proc/$p/stat); echo "$n $((u+s))"; done < $OUT/pids; }
cpu > $OUT/cpu.before
T0=$(date +%s.%N)
$BIN --jwt-secret $SECRET load --rate $RATE --seconds $SECS --check-timeout $CHECK > $OUT/load.log 2>&1
T1=$(date +%s.%N)
cpu > $OUT/cpu.after
TCK=$(getconf CLK_TCK)
{ echo "wall $(echo "$T1 - $T0" | bc) s"
  join $OUT/cpu.before $OUT/cpu.after | while read n a b; do p=$(awk -v n=$n '$1==n{print $2}' $OUT/pids); echo "  $n cpu $(( (b-a)/TCK )) s, $(grep VmHWM /proc/$p/status | tr -s ' ')"; done
} > $OUT/summary
while read n p; do kill $p 2>/dev/null; done < $OUT/pids; sleep 3
while read n p; do kill -9 $p 2>/dev/null; done < $OUT/pids
cat $OUT/summary; tail -25 $OUT/load.log
