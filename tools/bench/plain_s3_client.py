# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""The S3 requests of a scrub pass, and nothing else: the harness ceiling.

    python tools/bench/plain_s3_client.py ENDPOINT BUCKET KEYS_FILE POOL

Deletes every key of KEYS_FILE (one per line) the way glance_store's S3
driver does, HEAD then DELETE, with one boto3 client shared by POOL
threads, and prints the seconds it took. No database, no glance_store,
no scrubber: run through the benchmark's proxy and S3 server, its time
is the best any scrubber could do there, so the benchmark can tell the
scrubber's own overhead from the cost of the proxy, the S3 server and
boto3 on this machine.
"""

import concurrent.futures
import sys
import time

import boto3
from botocore import config as botocore_config


def main(argv):
    endpoint, bucket, keys_file, pool = argv
    pool = int(pool)
    with open(keys_file) as stream:
        keys = stream.read().split()
    client = boto3.client(
        's3', endpoint_url=endpoint, region_name='us-east-1',
        aws_access_key_id='bench', aws_secret_access_key='bench',
        config=botocore_config.Config(max_pool_connections=pool))

    def delete(key):
        client.head_object(Bucket=bucket, Key=key)
        client.delete_object(Bucket=bucket, Key=key)

    client.head_bucket(Bucket=bucket)   # connect before the clock starts
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(pool) as executor:
        for _done in executor.map(delete, keys):
            pass
    print('%.3f' % (time.monotonic() - started))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
