//! The Auth service with authentication disabled, as a fresh etcd answers: AuthStatus says
//! disabled, Authenticate says authentication is not enabled, and there are no users or roles.
//! Adding users and roles (RBAC) is not implemented yet and says so.

use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::auth_server::Auth;

/// Serves etcd's Auth service.
pub struct AuthService {
    node: Node,
}

impl AuthService {
    /// The service over `node`.
    pub fn new(node: Node) -> AuthService {
        AuthService { node }
    }
}

fn user_not_found() -> Status {
    Status::failed_precondition("etcdserver: user name not found")
}

fn role_not_found() -> Status {
    Status::failed_precondition("etcdserver: role name not found")
}

fn rbac_unimplemented() -> Status {
    Status::unimplemented("etch: users and roles (RBAC) are not implemented yet")
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        _r: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        // etcd refuses to enable authentication without a root user, and there are no users.
        Err(Status::failed_precondition(
            "etcdserver: root user does not exist",
        ))
    }

    async fn auth_disable(
        &self,
        _r: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        Ok(Response::new(pb::AuthDisableResponse {
            header: self.node.current_header(),
        }))
    }

    async fn auth_status(
        &self,
        _r: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        Ok(Response::new(pb::AuthStatusResponse {
            header: self.node.current_header(),
            enabled: false,
            auth_revision: 1,
        }))
    }

    async fn authenticate(
        &self,
        _r: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        Err(Status::failed_precondition(
            "etcdserver: authentication is not enabled",
        ))
    }

    async fn user_add(
        &self,
        _r: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        Err(rbac_unimplemented())
    }

    async fn user_get(
        &self,
        _r: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        Err(user_not_found())
    }

    async fn user_list(
        &self,
        _r: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        Ok(Response::new(pb::AuthUserListResponse {
            header: self.node.current_header(),
            users: Vec::new(),
        }))
    }

    async fn user_delete(
        &self,
        _r: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        Err(user_not_found())
    }

    async fn user_change_password(
        &self,
        _r: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        Err(user_not_found())
    }

    async fn user_grant_role(
        &self,
        _r: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        Err(user_not_found())
    }

    async fn user_revoke_role(
        &self,
        _r: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        Err(user_not_found())
    }

    async fn role_add(
        &self,
        _r: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        Err(rbac_unimplemented())
    }

    async fn role_get(
        &self,
        _r: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        Err(role_not_found())
    }

    async fn role_list(
        &self,
        _r: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        Ok(Response::new(pb::AuthRoleListResponse {
            header: self.node.current_header(),
            roles: Vec::new(),
        }))
    }

    async fn role_delete(
        &self,
        _r: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        Err(role_not_found())
    }

    async fn role_grant_permission(
        &self,
        _r: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        Err(role_not_found())
    }

    async fn role_revoke_permission(
        &self,
        _r: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        Err(role_not_found())
    }
}
