#!/bin/bash
# Verifier: the repository's own tests and the hidden ones must pass.
cd /app
export PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1
status=0
python3 -m unittest -v 2>&1 || status=1
python3 -m unittest discover -v -s /tests -p 'test_*.py' 2>&1 || status=1
if [ "$status" -eq 0 ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
