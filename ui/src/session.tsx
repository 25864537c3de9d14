import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Identity, Role } from './api';

export type Session = {
  who: Identity;
  signOut: () => void;
};

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

const rank: Record<Role, number> = { viewer: 0, editor: 1, admin: 2 };

// can reports whether the signed-in role has at least role's rights: the UI
// offers only the controls the API would allow (it enforces them anyway).
export function can(who: Identity, role: Role): boolean {
  return rank[who.role] >= rank[role];
}
