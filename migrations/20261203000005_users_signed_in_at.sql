-- API tokens follow the user's standing at Plinto (issue #18, finding 12): a token works only while
-- its user has signed in through Plinto recently. `users.last_seen_at` was already written only when
-- Plinto vouched for the user (a sign-in, or a Plinto access token bringing a changed profile); its
-- new name says so, so that nobody touches it on mere activity, which would keep tokens alive
-- without Plinto.
ALTER TABLE users RENAME COLUMN last_seen_at TO signed_in_at;
