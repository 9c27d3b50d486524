// Who is signed in (from GET /v1/me), shared by the views.

/** {key, user, actions}; `can('admin:keys.write')` says whether to offer a write. */
export const session = {
  me: null,
  can(action) { return !!this.me && this.me.actions.includes(action); },
};
