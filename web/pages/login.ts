/** The login (the certificate rides on the TLS connection; name and password here) and the forced password change. */
import { type ComponentChild, h } from 'preact';
import { useState } from 'preact/hooks';
import { call, type SessionView } from '../api.js';
import { t } from '../i18n.js';
import { ErrorLine } from '../ui.js';

export function Login({ onSession }: { onSession: (session: SessionView) => void }): ComponentChild {
  const [error, setError] = useState<unknown>(undefined);
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    try {
      onSession(await call<SessionView>('POST', '/session', { username: form.get('username'), password: form.get('password') }));
    } catch (failure) {
      setError(failure);
    }
  };
  return h(
    'form',
    { class: 'card', onSubmit: submit, 'aria-label': t('login') },
    h('h1', null, t('title')),
    h('p', { class: 'hint' }, t('loginHint')),
    h('label', null, t('username'), h('input', { name: 'username', autocomplete: 'username', required: true })),
    h('label', null, t('password'), h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit' }, t('login')),
    h(ErrorLine, { error }),
  );
}

export function ChangePassword({ session, onChanged }: { session: SessionView; onChanged: () => void }): ComponentChild {
  const [error, setError] = useState<unknown>(undefined);
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    if (form.get('newPassword') !== form.get('repeat')) return setError(t('mismatch'));
    try {
      await call('PUT', `/users/${session.role}/credentials`, { oldPassword: form.get('oldPassword'), newPassword: form.get('newPassword') });
      onChanged();
    } catch (failure) {
      setError(failure);
    }
  };
  return h(
    'form',
    { class: 'card', onSubmit: submit, 'aria-label': t('change') },
    h('p', null, t('mustChange')),
    h('label', null, t('oldPassword'), h('input', { name: 'oldPassword', type: 'password', autocomplete: 'current-password', required: true })),
    h('label', null, t('newPassword'), h('input', { name: 'newPassword', type: 'password', autocomplete: 'new-password', required: true })),
    h('label', null, t('repeatPassword'), h('input', { name: 'repeat', type: 'password', autocomplete: 'new-password', required: true })),
    h('button', { type: 'submit' }, t('change')),
    h(ErrorLine, { error }),
  );
}
