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
        [--access-key KEY --secret-key SECRET] [--cpu]

Deletes every key of KEYS_FILE (one per line) the way glance_store's S3
driver does, HEAD then DELETE, with one boto3 client shared by POOL
threads, and prints the seconds it took; with --cpu, then the CPU
seconds of this process over the same span (every thread, user +
system). The keys default to any (moto checks none); a real S3 server,
such as Ceph RGW, needs its user's. No database, no glance_store,
no scrubber: run through the benchmark's proxy and S3 server, its time
is the best any scrubber could do there, so the benchmark can tell the
scrubber's own overhead from the cost of the proxy, the S3 server and
boto3 on this machine.
"""

import argparse
import concurrent.futures
import sys
import time

import boto3
from botocore import config as botocore_config


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('endpoint')
    parser.add_argument('bucket')
    parser.add_argument('keys_file')
    parser.add_argument('pool', type=int)
    parser.add_argument('--access-key', default='bench')
    parser.add_argument('--secret-key', default='bench')
    parser.add_argument('--cpu', action='store_true',
                        help='print the CPU seconds too')
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    bucket, pool = args.bucket, args.pool
    with open(args.keys_file) as stream:
        keys = stream.read().split()
    client = boto3.client(
        's3', endpoint_url=args.endpoint, region_name='us-east-1',
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        config=botocore_config.Config(max_pool_connections=pool))

    def delete(key):
        client.head_object(Bucket=bucket, Key=key)
        client.delete_object(Bucket=bucket, Key=key)

    client.head_bucket(Bucket=bucket)   # connect before the clock starts
    started = time.monotonic()
    cpu_started = time.process_time()
    with concurrent.futures.ThreadPoolExecutor(pool) as executor:
        for _done in executor.map(delete, keys):
            pass
    seconds = time.monotonic() - started
    if args.cpu:
        print('%.3f %.3f' % (seconds, time.process_time() - cpu_started))
    else:
        print('%.3f' % seconds)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
