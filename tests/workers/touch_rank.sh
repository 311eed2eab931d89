#!/bin/bash
# touch_rank.sh DIR: as touch_rank.py, for --no-python (a program that is not Python).
test "$CONFORMANCE_SENTINEL" = parent || exit 3
echo "$LOCAL_RANK $WORLD_SIZE" > "$1/$RANK"
