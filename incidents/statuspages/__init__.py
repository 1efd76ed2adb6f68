"""Status pages: what stakeholders and customers read during an outage (issue 5).

Lives inside the incidents app because a status page is one more audience for an incident;
its models are imported by incidents.models so they share the app's migrations."""
