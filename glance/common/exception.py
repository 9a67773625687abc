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

"""Exceptions raised by the glance scrubber tree.

Each one carries a message meant for an operator: the command line prints
it as the single line that explains a non-zero exit.
"""

from glance.i18n import _


class GlanceException(Exception):
    """Base class: formats ``message`` with the keyword arguments."""

    message = _("An unknown exception occurred")

    def __init__(self, message=None, **kwargs):
        if message is None:
            message = self.message % kwargs
        super().__init__(message)


class NotFound(GlanceException):
    message = _("Image %(image_id)s was not found.")


class Conflict(GlanceException):
    message = _("Image %(image_id)s is in status '%(status)s', not "
                "'pending_delete'; only a pending_delete image can be "
                "restored.")


class InvalidConfiguration(GlanceException):
    message = _("Invalid configuration: %(reason)s")


class StoreUnavailable(GlanceException):
    message = _("Store unavailable: %(reason)s")


class DatabaseUnavailable(GlanceException):
    message = _("Cannot use the database at %(url)s: %(reason)s")


class ScrubberBusy(GlanceException):
    message = _("%(holder)s holds the scrub lock %(lock)s on this host; "
                "try again when it has finished.")


def one_line(error):
    """The first line of an error's text, or its type when it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
